// The training set on HER2ST A1 + A2 (both imaged): every in-tissue spot once per epoch, seeded shuffles and
// augmentations, and exact square symmetries.

import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { useCpuReferenceBackend } from '../../core/engine/backend.js';
import {
  augmentPatches,
  buildDataset,
  DEFAULT_AUGMENT,
  epochBatches,
  makeBatch,
  transformSquare,
  type SpotDataset,
} from '../../core/engine/dataset.js';
import { expressionMatrix, inTissueSpots, selectGenePanel, spotNnz } from '../../core/engine/gene-panel.js';
import { deriveSeed, permutation, Rng } from '../../core/engine/random.js';
import { openSections } from '../../core/readers/open.js';
import type { Section } from '../../core/section/section.js';
import { extractPatches } from '../../core/slides/patches.js';

const her2st = join(resolve(import.meta.dirname, '../../../shared/data'), 'her2st');
const SIZE = 32;

let sections: Section[];
let dataset: SpotDataset;

beforeAll(async () => {
  await useCpuReferenceBackend();
  sections = [
    (await openSections(join(her2st, 'A1'))).sections[0],
    (await openSections(join(her2st, 'A2'))).sections[0],
  ];
  const panel = selectGenePanel(sections, { size: 64 });
  dataset = await buildDataset(sections, panel, { inputSize: SIZE });
});

describe('buildDataset', () => {
  it('holds every in-tissue spot of both sections with its patch, expression, nnz and origin', async () => {
    const counts = sections.map((s) => inTissueSpots(s).length);
    expect(dataset.size).toBe(counts[0] + counts[1]);
    expect(dataset.sections.map((s) => [s.name, s.spots, s.offset])).toEqual([
      ['A1', counts[0], 0],
      ['A2', counts[1], counts[0]],
    ]);
    expect(dataset.patches!.length).toBe(dataset.size * SIZE * SIZE * 3);
    expect(dataset.expression.length).toBe(dataset.size * 64);

    const row = counts[0] + 5; // A2's sixth in-tissue spot
    const a2 = sections[1];
    const spot = inTissueSpots(a2)[5];
    expect([dataset.sectionIndex[row], dataset.spotIndex[row], dataset.spotIds[row]]).toEqual([
      1,
      spot,
      a2.spots.ids[spot],
    ]);
    expect(dataset.nnz[row]).toBe(spotNnz(a2, [spot])[0]);
    const panel = selectGenePanel(sections, { size: 64 });
    expect(dataset.expression.subarray(row * 64, (row + 1) * 64)).toEqual(expressionMatrix(a2, panel, [spot]));
    const patch = await extractPatches(a2, [spot], { pixels: SIZE });
    expect(dataset.patches!.subarray(row * SIZE * SIZE * 3, (row + 1) * SIZE * SIZE * 3)).toEqual(patch.data);
  });

  it('ranks nnz within each section', () => {
    for (const { offset, spots } of dataset.sections) {
      const ranks = dataset.nnzRank.subarray(offset, offset + spots);
      expect(Math.min(...ranks)).toBe(0);
      expect(Math.max(...ranks)).toBe(1);
    }
  });
});

describe('epoch batches', () => {
  it('cover every spot exactly once, in batches of near-equal size', () => {
    const batches = epochBatches(dataset.size, { batchSize: 64, seed: 1, epoch: 0 });
    expect(batches).toHaveLength(Math.ceil(dataset.size / 64));
    const sizes = batches.map((b) => b.length);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(64);
    const seen = batches.flatMap((b) => Array.from(b)).sort((a, b) => a - b);
    expect(seen).toEqual(Array.from({ length: dataset.size }, (_, i) => i));
  });

  it('shuffle the same for the same seed and epoch, differently otherwise', () => {
    const plan = { batchSize: 50, seed: 7, epoch: 3 };
    expect(epochBatches(dataset.size, plan)).toEqual(epochBatches(dataset.size, plan));
    expect(epochBatches(dataset.size, { ...plan, epoch: 4 })).not.toEqual(epochBatches(dataset.size, plan));
    expect(epochBatches(dataset.size, { ...plan, seed: 8 })).not.toEqual(epochBatches(dataset.size, plan));
    expect(Array.from(epochBatches(10, { ...plan, batchSize: 10, shuffle: false })[0])).toEqual([...Array(10).keys()]);
  });

  it('turn into tensors: raw patches as floats without augmentation', () => {
    const indices = Int32Array.from([3, 0, 400]);
    const batch = makeBatch(dataset, indices);
    expect(batch.patches.shape).toEqual([3, SIZE, SIZE, 3]);
    expect(batch.expression.shape).toEqual([3, 64]);
    const pixels = batch.patches.dataSync();
    const bytes = SIZE * SIZE * 3;
    expect(Array.from(pixels.subarray(bytes, 2 * bytes))).toEqual(Array.from(dataset.patches!.subarray(0, bytes)));
    expect(Array.from(batch.nnz)).toEqual([3, 0, 400].map((i) => dataset.nnz[i]));
    expect(Array.from(batch.sectionIndex)).toEqual([0, 0, 1]);
    const before = tf.memory().numTensors;
    batch.dispose();
    expect(tf.memory().numTensors).toBe(before - 2);
  });
});

describe('augmentation', () => {
  const bytes = SIZE * SIZE * 3;
  const patches = () => dataset.patches!.subarray(0, 4 * bytes);

  it('keeps the shape and the 0..255 range, and repeats for the same seed', () => {
    const a = augmentPatches(patches(), SIZE, 4, DEFAULT_AUGMENT, 42);
    expect(a.length).toBe(4 * bytes);
    expect(a.every((v) => v >= 0 && v <= 255)).toBe(true);
    expect(augmentPatches(patches(), SIZE, 4, DEFAULT_AUGMENT, 42)).toEqual(a);
    expect(augmentPatches(patches(), SIZE, 4, DEFAULT_AUGMENT, 43)).not.toEqual(a);
    const batch = makeBatch(dataset, Int32Array.from([0, 1, 2, 3]), { augment: DEFAULT_AUGMENT, seed: 42 });
    expect(batch.patches.dataSync()).toEqual(a);
    batch.dispose();
  });

  it('with geometry only, permutes each patch exactly (same multiset of pixels)', () => {
    const geometric = { ...DEFAULT_AUGMENT, brightness: 0, contrast: 0, saturation: 0 };
    const a = augmentPatches(patches(), SIZE, 4, geometric, 5);
    for (let p = 0; p < 4; p++) {
      const sorted = (x: ArrayLike<number>) => Array.from(x).sort((u, v) => u - v);
      expect(sorted(a.subarray(p * bytes, (p + 1) * bytes))).toEqual(
        sorted(patches().subarray(p * bytes, (p + 1) * bytes)),
      );
    }
  });

  it('rotates by 90 degrees exactly as numpy.rot90 (counter-clockwise)', () => {
    // 3 x 3 patch, pixel (r, c) = [r, c, 10 r + c].
    const src = Uint8Array.from({ length: 27 }, (_, k) => {
      const [r, c, ch] = [Math.floor(k / 9), Math.floor(k / 3) % 3, k % 3];
      return [r, c, 10 * r + c][ch];
    });
    const out = new Uint8Array(27);
    transformSquare(src, out, 3, { flipX: false, flipY: false, rotations: 1 });
    const id = (k: number) => out[k * 3 + 2];
    // np.rot90([[0,1,2],[10,11,12],[20,21,22]]) = [[2,12,22],[1,11,21],[0,10,20]]
    expect(Array.from({ length: 9 }, (_, k) => id(k))).toEqual([2, 12, 22, 1, 11, 21, 0, 10, 20]);

    let x = dataset.patches!.slice(0, bytes);
    for (let turn = 0; turn < 4; turn++) {
      const next = new Uint8Array(bytes);
      transformSquare(x, next, SIZE, { flipX: false, flipY: false, rotations: 1 });
      x = next;
    }
    expect(x).toEqual(dataset.patches!.subarray(0, bytes));
    const flipped = new Uint8Array(27);
    transformSquare(src, flipped, 3, { flipX: true, flipY: true, rotations: 0 });
    const half = new Uint8Array(27);
    transformSquare(src, half, 3, { flipX: false, flipY: false, rotations: 2 });
    expect(flipped).toEqual(half);
  });
});

describe('seeded randomness', () => {
  it('repeats sequences and derives independent seeds', () => {
    const a = new Rng(9);
    const first = [a.next(), a.next()];
    const b = new Rng(9);
    expect([b.next(), b.next()]).toEqual(first);
    expect(new Rng(a.state).next()).toBe(a.next());
    expect(deriveSeed(1, 'shuffle', 2)).toBe(deriveSeed(1, 'shuffle', 2));
    expect(new Set([deriveSeed(1, 'shuffle', 2), deriveSeed(1, 'shuffle', 3), deriveSeed(2, 'shuffle', 2)]).size).toBe(
      3,
    );
    expect(Array.from(permutation(5, 3)).sort()).toEqual([0, 1, 2, 3, 4]);
  });
});
