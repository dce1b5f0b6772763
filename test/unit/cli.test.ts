// The `delst` command as users run it: the built bin, real data, exit codes and messages.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const data = resolve(root, '../shared/data');
const bin = join(root, 'bin/delst.js');

function delst(...args: string[]) {
  if (!existsSync(join(root, 'dist/cli/delst.js'))) throw new Error('dist/ is missing: run `npm run build` first');
  const run = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

function inspectJson(path: string): Json {
  const run = delst('inspect', path, '--json');
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  return JSON.parse(run.stdout);
}

describe('delst inspect', () => {
  it('reads HER2ST A1 with the numbers the paper data has', () => {
    const report = inspectJson(join(data, 'her2st/A1'));
    expect(report).toMatchObject({
      format: 'legacy-st',
      spots: 346,
      genes: 15045,
      image: { width: 2000 },
      micronsPerPixel: 0.91747,
      spotDiameterMicrons: 100,
    });
    expect(report.labels.pathologist).toEqual({
      'invasive cancer': 282,
      'connective tissue': 24,
      'cancer in situ': 21,
      'adipose tissue': 12,
      undetermined: 5,
      'immune infiltrate': 2,
    });
  });

  it('gives the same section from the AnnData conversion of A1', () => {
    const legacy = inspectJson(join(data, 'her2st/A1'));
    const anndata = inspectJson(join(data, 'anndata/her2st_A1.h5ad'));
    expect(anndata.format).toBe('anndata');
    expect(anndata.spots).toBe(legacy.spots);
    expect(anndata.genes).toBe(legacy.genes);
    expect(anndata.micronsPerPixel).toBeCloseTo(legacy.micronsPerPixel, 2);
    expect(anndata.spotDiameterMicrons).toBe(100);
    expect(anndata.labels.pathologist_label).toEqual(legacy.labels.pathologist);
  });

  it('defaults to the bundled demo, HER2ST B4 with a downsized image', () => {
    const run = delst('inspect', '--json');
    expect(run.code).toBe(0);
    const demo = JSON.parse(run.stdout);
    const b4 = inspectJson(join(data, 'her2st/B4'));
    expect(demo.format).toBe('legacy-st');
    expect(demo.spots).toBe(b4.spots);
    expect(demo.genes).toBe(b4.genes);
    expect(b4.image).toEqual({ width: 9272, height: 9923 });
    expect(Math.max(demo.image.width, demo.image.height)).toBe(4096);
    expect(demo.micronsPerPixel).toBe(b4.micronsPerPixel);
  });

  it('reads every section of every data folder', () => {
    const her2st = inspectJson(join(data, 'her2st'));
    expect(her2st.sections).toHaveLength(30);
    for (const section of her2st.sections) expect(section.spots).toBeGreaterThan(200);
    const withImage = Object.fromEntries(
      her2st.sections.filter((s: Json) => s.image).map((s: Json) => [s.name, s.spots]),
    );
    expect(withImage).toEqual({ A1: 346, A2: 323, B4: 283 });

    const mob = inspectJson(join(data, 'stutility-mob'));
    expect(mob.sections.map((s: Json) => [s.name, s.spots, s.genes])).toEqual([
      ['MOB1', 379, 1000],
      ['MOB2', 407, 1000],
      ['MOB3', 438, 1000],
      ['MOB4', 403, 1000],
    ]);

    const anndata = inspectJson(join(data, 'anndata'));
    expect(anndata.sections.map((s: Json) => s.format)).toEqual(['anndata', 'anndata']);
  });

  it('opens the readable fixtures and names the one that holds no raw counts', () => {
    // stlearn's test_data.h5 stores scaled expression (negative values) in X: DELST needs counts.
    const run = delst('inspect', join(data, 'fixtures'), '--json');
    expect(run.code).toBe(1);
    const report = JSON.parse(run.stdout);
    expect(report.sections.map((s: Json) => [s.name, s.format, s.spots])).toEqual([
      ['test_data', 'anndata', 49],
      ['visium-outs-scanpy-heart', 'spaceranger', 100],
      ['visium-outs-seurat-mousebrain', 'spaceranger', 2695],
      ['section1', 'spaceranger', 22],
      ['section2', 'spaceranger', 22],
    ]);
    expect(report.errors).toHaveLength(1);
    expect(report.errors[0]).toMatch(/stlearn-bc-blockA-labels\/test_data\.h5: .*negative.*not raw counts/);
    expect(run.stderr).toContain('test_data.h5');
  });

  it('prints a readable table without --json', () => {
    const run = delst('inspect', join(data, 'her2st/A1'));
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/spots under tissue with counts\s+346/);
    expect(run.stdout).toMatch(/282\s+invasive cancer/);
  });
});

describe('delst inspect on bad input', () => {
  it('names a missing path and exits non-zero without a stack trace', () => {
    const run = delst('inspect', '/no/such/folder');
    expect(run.code).toBe(1);
    expect(run.stderr.trim()).toBe('delst: /no/such/folder: no such file or folder');
  });

  it('says the format is unknown for a folder of unrelated files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'delst-cli-'));
    await writeFile(join(dir, 'notes.txt'), 'not spatial data\n');
    const run = delst('inspect', dir);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`${dir}: unknown format`);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  it('names the file when a section is broken', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'delst-cli-'));
    const section = join(dir, 'A1');
    await mkdir(section);
    for (const file of ['counts.tsv.gz', 'spots.tsv', 'scalefactors_json.json']) {
      await copyFile(join(data, 'her2st/A1', file), join(section, file));
    }
    const image = await readFile(join(data, 'her2st/A1/image.png'));
    await writeFile(join(section, 'image.png'), image.subarray(0, image.length >> 1)); // a copy cut short
    const run = delst('inspect', section, '--json');
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(join(section, 'image.png'));
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  it('rejects unknown options', () => {
    const run = delst('inspect', '--jsn');
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('unknown option --jsn');
  });
});
