// Damaged files (issue 6, Reliability): truncated and bit-flipped copies of each fixture format's key files are
// opened the way the app opens them. Each open must either succeed with a well-formed section (a flipped bit may
// land on bytes nothing reads) or throw a DataError that names the damaged file, within bounded time, never
// another error type. h5wasm may print "Aborted(native code called abort())" on damaged HDF5: fine if the
// result is a DataError.

import { chmod, copyFile, cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataError } from '../../core/readers/errors.js';
import { openSections, type OpenResult } from '../../core/readers/open.js';
import { Rng } from '../../core/engine/random.js';

/** Seeded uniform [0, 1) from the engine's generator. */
function rng(seed: number): () => number {
  const generator = new Rng(seed);
  return () => generator.next();
}

const DATA = path.resolve(import.meta.dirname, '../../../shared/data');
const VISIUM = path.join(DATA, 'fixtures/visium-outs-seurat-mousebrain');
const H5AD = path.join(DATA, 'fixtures/anndata-squidpy/test_data.h5ad');
const A1 = path.join(DATA, 'her2st/A1');

const VARIANTS = 24;
const OPEN_TIMEOUT_MS = 10_000;

function seedOf(text: string): number {
  let h = 2166136261;
  for (const c of text) h = Math.imul(h ^ c.charCodeAt(0), 16777619);
  return h >>> 0;
}

interface Variant {
  readonly what: string;
  readonly bytes: Uint8Array;
}

/** Truncations to 0 and 1 byte and to random lengths, then 1-8 random bit flips. */
function variants(original: Uint8Array, seed: number): Variant[] {
  const random = rng(seed);
  const out: Variant[] = [];
  const truncations = [0, 1];
  while (truncations.length < VARIANTS / 2) truncations.push(2 + Math.floor(random() * (original.length - 2)));
  for (const length of truncations)
    out.push({ what: `truncated to ${length} bytes`, bytes: original.slice(0, length) });
  while (out.length < VARIANTS) {
    const bytes = original.slice();
    const flips = 1 + Math.floor(random() * 8);
    const at: number[] = [];
    for (let i = 0; i < flips; i++) {
      const bit = Math.floor(random() * bytes.length * 8);
      bytes[bit >> 3] ^= 1 << (bit & 7);
      at.push(bit);
    }
    out.push({ what: `${flips} bit(s) flipped at ${at.join(', ')}`, bytes });
  }
  return out;
}

type Outcome = { ok: OpenResult } | { error: unknown } | { timeout: true };

async function openBounded(target: string): Promise<{ outcome: Outcome; ms: number }> {
  const start = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<Outcome>((resolve) => {
    timer = setTimeout(() => resolve({ timeout: true }), OPEN_TIMEOUT_MS);
  });
  const open = openSections(target).then(
    (ok): Outcome => ({ ok }),
    (error: unknown): Outcome => ({ error }),
  );
  const outcome = await Promise.race([open, timeout]);
  clearTimeout(timer);
  return { outcome, ms: performance.now() - start };
}

/** Problems with one open of a damaged file, as text; empty when the outcome is acceptable. */
function problems(outcome: Outcome, ms: number, file: string, opened: string): string[] {
  // A synchronous hang would also block the timer: elapsed time catches a slow open that did end.
  if ('timeout' in outcome || ms > OPEN_TIMEOUT_MS) return [`no result within ${OPEN_TIMEOUT_MS} ms`];
  if ('error' in outcome) {
    const error = outcome.error;
    if (!(error instanceof DataError)) {
      const text = error instanceof Error ? `${error.name}: ${error.message}\n${error.stack}` : String(error);
      return [`threw something other than a DataError: ${text}`];
    }
    // Damage can leave a file unrecognisable (an emptied spots.tsv is no Spot Detector table), so the folder
    // looks as if it lacked it: then the error names the opened folder and says what it lacks ("unknown format",
    // "no Spot Detector table found"). Otherwise it must name the damaged file.
    const folderLacksIt = opened !== file && error.file === opened;
    return error.message.includes(file) || folderLacksIt ? [] : [`DataError does not name ${file}: ${error.message}`];
  }
  const { sections } = outcome.ok;
  if (sections.length === 0) return ['opened, but no sections'];
  return sections.flatMap((s) => {
    const n = s.spots.ids.length;
    const out: string[] = [];
    if (n === 0) out.push(`section ${s.name}: no spots`);
    if (s.spots.x.length !== n || s.spots.y.length !== n) out.push(`section ${s.name}: coordinate count != spots`);
    if (!Array.from(s.spots.x).every(Number.isFinite) || !Array.from(s.spots.y).every(Number.isFinite)) {
      out.push(`section ${s.name}: non-finite coordinates`);
    }
    if (s.counts.nSpots !== n) out.push(`section ${s.name}: ${s.counts.nSpots} count rows for ${n} spots`);
    return out;
  });
}

/** Writes each damaged version of `file` in place, opens `opened`, restores the file; all problems at the end. */
async function fuzz(file: string, opened: string): Promise<void> {
  const original = new Uint8Array(await readFile(file));
  const failures: string[] = [];
  try {
    for (const variant of variants(original, seedOf(path.basename(file)))) {
      await writeFile(file, variant.bytes);
      const { outcome, ms } = await openBounded(opened);
      for (const p of problems(outcome, ms, file, opened)) failures.push(`${variant.what}: ${p}`);
      if ('timeout' in outcome) break; // the hung open still runs: later variants would race with it
    }
  } finally {
    await writeFile(file, original);
  }
  expect(failures, `${path.basename(file)}\n${failures.join('\n')}`).toEqual([]);
}

let tmp: string;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'delst-fuzz-'));
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('readers on a damaged AnnData file', () => {
  it('test_data.h5ad: DataError naming it, or a well-formed section', async () => {
    const file = path.join(tmp, 'test_data.h5ad');
    await copyFile(H5AD, file);
    await chmod(file, 0o644);
    await fuzz(file, file);
  });
});

describe('readers on damaged Space Ranger files', () => {
  let outs: string;

  beforeAll(async () => {
    outs = path.join(tmp, 'visium');
    await cp(VISIUM, outs, { recursive: true });
    await chmodTree(outs);
  });

  // The .h5 first: the files fuzzed after it must still read their sound matrix (see the last test).
  for (const name of [
    'filtered_feature_bc_matrix.h5',
    'spatial/tissue_positions_list.csv',
    'spatial/scalefactors_json.json',
  ]) {
    it(`${name}: DataError naming it, or a well-formed section`, async () => {
      await fuzz(path.join(outs, name), outs);
    });
  }

  // Once h5wasm has failed inside wasm on a damaged file (abort() or a memory fault), that instance is broken; the
  // reader loads a fresh one, so a sound file still reads after damaged ones.
  it('a sound .h5 still reads after h5wasm failed on damaged ones', async () => {
    const { sections } = await openSections(outs);
    expect(sections[0].spots.ids.length).toBeGreaterThan(0);
  });
});

describe('readers on damaged legacy ST files', () => {
  let folder: string;
  let withImage: string;

  beforeAll(async () => {
    // Without the 4 MB image, reading stays fast; the image is fuzzed in a folder of its own.
    folder = path.join(tmp, 'A1');
    withImage = path.join(tmp, 'A1-image');
    for (const dir of [folder, withImage]) {
      await mkdir(dir);
      for (const name of ['counts.tsv.gz', 'spots.tsv', 'scalefactors_json.json']) {
        await copyFile(path.join(A1, name), path.join(dir, name));
      }
    }
    await copyFile(path.join(A1, 'image.png'), path.join(withImage, 'image.png'));
    await chmodTree(folder);
    await chmodTree(withImage);
  });

  for (const name of ['counts.tsv.gz', 'spots.tsv', 'scalefactors_json.json']) {
    it(`${name}: DataError naming it, or a well-formed section`, async () => {
      await fuzz(path.join(folder, name), folder);
    });
  }

  it('image.png: DataError naming it, or a well-formed section', async () => {
    await fuzz(path.join(withImage, 'image.png'), withImage);
  });
});

/** The fixtures are read-only: their copies must be writable. */
async function chmodTree(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) await chmodTree(p);
    else await chmod(p, 0o644);
  }
}
