// uploadSection: files a browser picked, written under <projectDir>/uploads/ and opened. Names that would leave
// the upload's folder are refused and nothing is written outside it; limits hold; a chunked upload of HER2ST A1
// (a legacy ST folder) opens as the original does.

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Studio } from '../../core/api/studio.js';
import { checkedPath, safeName } from '../../core/api/upload.js';

const A1 = resolve(import.meta.dirname, '../../../shared/data/her2st/A1');
const b64 = (text: string | Buffer) => Buffer.from(text).toString('base64');

/** Every path under a folder, relative, sorted. */
function tree(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort();
}

describe('uploadSection', () => {
  let scratch: string;
  let studio: Studio;

  beforeEach(() => {
    scratch = mkdtempSync(join(tmpdir(), 'delst-upload-'));
    studio = new Studio({
      cacheDir: join(scratch, 'cache'),
      projectDir: join(scratch, 'project'),
      uploadLimits: { maxFileBytes: 10 << 20, maxTotalBytes: 20 << 20 },
    });
  });

  afterEach(async () => {
    studio.close();
    // The slide cache tidies (and creates) its folder in the background after construction.
    await studio.slides.whenReady();
    rmSync(scratch, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
  });

  it('refuses paths that would leave the upload, and writes nothing anywhere', async () => {
    const bad = [
      '../escape.txt',
      'a/../../escape.txt',
      '..',
      '/tmp/escape.txt',
      'C:/escape.txt',
      'a\\..\\escape.txt',
      'a\0b',
      '',
      'a//b',
      './a',
      'a/',
    ];
    for (const path of bad) {
      await expect(studio.uploadSection('A1', [{ path, data: b64('x') }]), JSON.stringify(path)).rejects.toThrow(
        /uploadSection: (refused|bad) file path/,
      );
      expect(() => checkedPath(path)).toThrow();
    }
    for (const path of [1, null, { path: 'a' }]) {
      await expect(studio.uploadSection('A1', [{ path: path as unknown as string, data: '' }])).rejects.toThrow();
    }
    // A good file before a bad one: the whole upload goes.
    await expect(
      studio.uploadSection('A1', [
        { path: 'spots.tsv', data: b64('x') },
        { path: '../escape.txt', data: b64('x') },
      ]),
    ).rejects.toThrow(/refused/);
    expect(existsSync(join(scratch, 'escape.txt'))).toBe(false);
    expect(existsSync(join(scratch, 'project', 'escape.txt'))).toBe(false);
    expect(tree(join(scratch, 'project', 'uploads'))).toEqual([]);
  });

  it('makes a safe folder name of any name', async () => {
    expect(safeName('../../etc/passwd')).toBe('etc_passwd');
    expect(safeName('..')).toBe('upload');
    expect(safeName('my section (1)')).toBe('my_section_1_');
    expect(() => safeName('')).toThrow();
    expect(() => safeName('a\0b')).toThrow();
    const file = join(scratch, 'bare.png');
    const sharp = (await import('sharp')).default;
    await sharp({ create: { width: 64, height: 48, channels: 3, background: '#c08090' } })
      .png()
      .toFile(file);
    const result = await studio.uploadSection('../../evil', [{ path: 'bare.png', data: b64(readFileSync(file)) }]);
    expect(result.failed).toEqual([]);
    expect(result.opened).toHaveLength(1);
    expect(result.opened[0].format).toBe('image');
    const uploads = join(scratch, 'project', 'uploads');
    const [folder] = readdirSync(uploads);
    expect(folder).toMatch(/^evil-\d{8}T\d{6}Z$/);
    // One file: the file itself is opened.
    expect(result.path).toBe(join(uploads, folder, 'bare.png'));
    expect(readdirSync(scratch).sort()).toEqual(['bare.png', 'cache', 'project']);
  });

  it('holds the size limits, per file and in all, and chunk order', async () => {
    const mib = Buffer.alloc(1 << 20, 7).toString('base64');
    const eleven = Array.from({ length: 11 }, (_, i) => ({ path: 'big.bin', data: mib, offset: i << 20 }));
    await expect(studio.uploadSection('big', eleven)).rejects.toThrow(/big\.bin is larger than the limit/);
    const files = (n: number, prefix: string) =>
      Array.from({ length: n }, (_, i) => ({ path: `${prefix}.bin`, data: mib, offset: i << 20 }));
    const first = await studio.uploadSection('many', files(9, 'a'), { done: false });
    await expect(
      studio.uploadSection('many', files(9, 'b'), { uploadId: first.uploadId, done: false }),
    ).resolves.toBeTruthy();
    await expect(studio.uploadSection('many', files(3, 'c'), { uploadId: first.uploadId })).rejects.toThrow(
      /the upload is larger than the limit/,
    );
    // Dropped: its id is gone, its staging folder too.
    await expect(studio.uploadSection('many', [], { uploadId: first.uploadId })).rejects.toThrow(
      /no upload in progress/,
    );
    await expect(studio.uploadSection('x', [{ path: 'a', data: b64('x'), offset: 5 }])).rejects.toThrow(/expected 0/);
    await expect(studio.uploadSection('x', [{ path: 'a', data: 'not base64!' }])).rejects.toThrow(/base64/);
    await expect(studio.uploadSection('x', [])).rejects.toThrow(/no files/);
    await expect(studio.uploadSection('x', [], { uploadId: '../../x' })).rejects.toThrow(/no upload in progress/);
    expect(tree(join(scratch, 'project', 'uploads'))).toEqual([]);
  });

  it('needs a project folder', async () => {
    const bare = new Studio({ cacheDir: join(scratch, 'cache') });
    await expect(bare.uploadSection('A1', [{ path: 'a', data: '' }])).rejects.toThrow(/needs a project folder/);
    await bare.slides.whenReady();
  });

  it.skipIf(!existsSync(A1))('uploads the HER2ST A1 folder in chunks; it opens with 346 spots', async () => {
    const names = readdirSync(A1).sort();
    const chunk = 1 << 20;
    let uploadId: string | null = null;
    const batches = names.flatMap((name) => {
      const bytes = readFileSync(join(A1, name));
      return Array.from({ length: Math.max(1, Math.ceil(bytes.length / chunk)) }, (_, i) => ({
        path: name,
        data: b64(bytes.subarray(i * chunk, (i + 1) * chunk)),
        offset: i * chunk,
      }));
    });
    expect(batches.length).toBeGreaterThan(names.length); // counts.tsv.gz or image.png takes several chunks
    const uploads = join(scratch, 'project', 'uploads');
    for (const batch of batches.slice(0, -1)) {
      ({ uploadId } = await studio.uploadSection('A1', [batch], { uploadId, done: false }));
      // Nothing but the hidden staging folder before the end.
      expect(readdirSync(uploads).every((name) => name.startsWith('.partial-'))).toBe(true);
    }
    const result = await studio.uploadSection('A1', batches.slice(-1), { uploadId });
    expect(result.failed).toEqual([]);
    expect(result.opened).toHaveLength(1);
    expect(result.opened[0].spots).toBe(346);
    const [folder] = readdirSync(uploads);
    expect(readdirSync(uploads)).toEqual([folder]);
    expect(folder).toMatch(/^A1-/);
    expect(result.path).toBe(join(uploads, folder));
    for (const name of names)
      expect(readFileSync(join(uploads, folder, name)).equals(readFileSync(join(A1, name)))).toBe(true);
    const [original] = (await new Studio({ cacheDir: join(scratch, 'cache') }).openPath(A1)).opened;
    expect(result.opened[0].genes).toBe(original.genes);
    expect(result.opened[0].labels).toEqual({ ...original.labels, annotations: {} });
    expect((await studio.listRecent())[0].path).toBe(join(uploads, folder));
  });
});
