// The training set: one row per in-tissue spot of the training sections, with its H&E patch, its panel
// expression, nnz and where it came from; seeded epoch batches and seeded augmentations on top.
//
// Patches are cut once, up front (extractPatches decodes each slide once): an epoch then costs no image work
// beyond augmentation. At 112 px a spot takes 37.6 kB, so 10k spots hold 376 MB.

import * as tf from '@tensorflow/tfjs';
import type { Section } from '../section/section.js';
import { DEFAULT_PATCH_SPOT_DIAMETERS, extractPatches } from '../slides/patches.js';
import { expressionMatrix, inTissueSpots, percentileRank, spotNnz, type GenePanel } from './gene-panel.js';
import { deriveSeed, permutation, Rng } from './random.js';

export interface DatasetOptions {
  /** Patch side in pixels (the model's image.inputSize). */
  readonly inputSize: number;
  /** Patch side in spot diameters (default 1.25: the spot plus some context). */
  readonly patchSpotDiameters?: number;
  /** Cut patches (default true); false builds the gene side only (sections without images). */
  readonly withPatches?: boolean;
  /** nnz over the whole measured transcriptome (default) or over the panel genes only. */
  readonly nnzGenes?: 'transcriptome' | 'panel';
  readonly onProgress?: (done: number, total: number, section: string) => void;
}

/** One training section as a checkpoint records it. */
export interface DatasetSection {
  readonly name: string;
  readonly source: string;
  readonly spots: number;
  /** First row of this section in the dataset. */
  readonly offset: number;
}

export interface SpotDataset {
  readonly size: number;
  readonly patchSize: number;
  /** size x patchSize x patchSize x 3 RGB bytes, row-major; null without patches. */
  readonly patches: Uint8Array | null;
  readonly panelSize: number;
  /** size x panelSize model input (gene-panel.ts). */
  readonly expression: Float32Array;
  /** Genes with a raw count > 0. */
  readonly nnz: Int32Array;
  /** nnz as a percentile rank within the spot's own section, in [0, 1]. */
  readonly nnzRank: Float32Array;
  readonly sectionIndex: Int32Array;
  /** Index into the section's spots. */
  readonly spotIndex: Int32Array;
  readonly spotIds: readonly string[];
  readonly sections: readonly DatasetSection[];
}

/** Builds the dataset from the in-tissue spots of `sections`, in section then spot order. */
export async function buildDataset(
  sections: readonly Section[],
  panel: GenePanel,
  options: DatasetOptions,
): Promise<SpotDataset> {
  const withPatches = options.withPatches ?? true;
  const size = options.inputSize;
  const spotLists = sections.map(inTissueSpots);
  const total = spotLists.reduce((n, s) => n + s.length, 0);
  if (total === 0) throw new Error('the training sections have no in-tissue spots');
  const patchBytes = size * size * 3;
  const patches = withPatches ? new Uint8Array(total * patchBytes) : null;
  const expression = new Float32Array(total * panel.genes.length);
  const nnz = new Int32Array(total);
  const nnzRank = new Float32Array(total);
  const sectionIndex = new Int32Array(total);
  const spotIndex = new Int32Array(total);
  const spotIds: string[] = [];
  const records: DatasetSection[] = [];

  let offset = 0;
  for (const [i, section] of sections.entries()) {
    options.onProgress?.(i, sections.length, section.name);
    const spots = spotLists[i];
    if (patches) {
      const sizeMicrons = (options.patchSpotDiameters ?? DEFAULT_PATCH_SPOT_DIAMETERS) * section.spotDiameterMicrons;
      const batch = await extractPatches(section, spots, { pixels: size, sizeMicrons });
      patches.set(batch.data, offset * patchBytes);
    }
    expression.set(expressionMatrix(section, panel, spots), offset * panel.genes.length);
    const counts = spotNnz(section, spots, options.nnzGenes === 'panel' ? panel.genes : undefined);
    nnz.set(counts, offset);
    nnzRank.set(percentileRank(counts), offset);
    sectionIndex.fill(i, offset, offset + spots.length);
    spotIndex.set(spots, offset);
    for (const s of spots) spotIds.push(section.spots.ids[s]);
    records.push({ name: section.name, source: section.source, spots: spots.length, offset });
    offset += spots.length;
  }
  options.onProgress?.(sections.length, sections.length, '');
  return {
    size: total,
    patchSize: size,
    patches,
    panelSize: panel.genes.length,
    expression,
    nnz,
    nnzRank,
    sectionIndex,
    spotIndex,
    spotIds,
    sections: records,
  };
}

// ---- batches ---------------------------------------------------------------------------------------------------

export interface BatchPlan {
  readonly batchSize: number;
  /** Run seed; each epoch's order derives from (seed, epoch), so a resumed run sees the same batches. */
  readonly seed: number;
  readonly epoch: number;
  /** Shuffle (default true); false keeps dataset order (embedding, evaluation). */
  readonly shuffle?: boolean;
}

/**
 * Row indices of each batch of one epoch: every row exactly once. There are ceil(size / batchSize) batches of
 * near-equal size (they differ by at most one) rather than a small remainder batch, which would make a poor
 * contrastive batch and noisy BatchNorm statistics.
 */
export function epochBatches(size: number, plan: BatchPlan): Int32Array[] {
  if (!(Number.isInteger(plan.batchSize) && plan.batchSize >= 1)) {
    throw new RangeError(`batch size must be a positive integer: ${plan.batchSize}`);
  }
  const order =
    plan.shuffle === false
      ? Int32Array.from({ length: size }, (_, i) => i)
      : permutation(size, deriveSeed(plan.seed, 'shuffle', plan.epoch));
  const count = Math.ceil(size / plan.batchSize);
  return Array.from({ length: count }, (_, k) =>
    order.slice(Math.floor((size * k) / count), Math.floor((size * (k + 1)) / count)),
  );
}

/** One batch: tensors for the model (the caller disposes them), plain arrays for the losses' pair building. */
export interface Batch {
  readonly indices: Int32Array;
  /** [B, N, N, 3] float32 in 0..255 (the model normalises). */
  readonly patches: tf.Tensor4D;
  /** [B, panelSize] model input. */
  readonly expression: tf.Tensor2D;
  readonly nnz: Float32Array;
  /** nnz percentile within the spot's section (over the whole dataset, not the batch). */
  readonly nnzRank: Float32Array;
  readonly sectionIndex: Int32Array;
  dispose(): void;
}

/** Rows `indices` as a batch, augmented when `augment` is given (seeded: same seed, same batch). */
export function makeBatch(
  dataset: SpotDataset,
  indices: Int32Array,
  options: { augment?: AugmentOptions | null; seed?: number } = {},
): Batch {
  if (!dataset.patches) throw new Error('the dataset was built without patches');
  const n = dataset.patchSize;
  const raw = gatherRows(dataset.patches, n * n * 3, indices);
  const pixels = options.augment
    ? augmentPatches(raw, n, indices.length, options.augment, options.seed ?? 0)
    : Float32Array.from(raw);
  const patches = tf.tensor4d(pixels, [indices.length, n, n, 3]);
  const expression = tf.tensor2d(gatherRows(dataset.expression, dataset.panelSize, indices), [
    indices.length,
    dataset.panelSize,
  ]);
  return {
    indices,
    patches,
    expression,
    nnz: Float32Array.from(indices, (i) => dataset.nnz[i]),
    nnzRank: Float32Array.from(indices, (i) => dataset.nnzRank[i]),
    sectionIndex: Int32Array.from(indices, (i) => dataset.sectionIndex[i]),
    dispose: () => tf.dispose([patches, expression]),
  };
}

function gatherRows<T extends Uint8Array | Float32Array>(data: T, width: number, indices: Int32Array): T {
  const out = new (data.constructor as new (n: number) => T)(indices.length * width);
  indices.forEach((row, k) => out.set(data.subarray(row * width, (row + 1) * width), k * width));
  return out;
}

// ---- augmentation ----------------------------------------------------------------------------------------------

export interface AugmentOptions {
  /** Random horizontal and vertical flips, each with probability 1/2. */
  readonly flips: boolean;
  /** A random multiple of 90 degrees. */
  readonly rotations: boolean;
  /** torchvision ColorJitter strengths: factors drawn from [max(0, 1 - s), 1 + s]; 0 turns one off. */
  readonly brightness: number;
  readonly contrast: number;
  readonly saturation: number;
}

/** What mclSTExp trains with: flips, 90-degree rotations, ColorJitter(0.5, 0.5, 0.5). */
export const DEFAULT_AUGMENT: AugmentOptions = Object.freeze({
  flips: true,
  rotations: true,
  brightness: 0.5,
  contrast: 0.5,
  saturation: 0.5,
});

/** A square's symmetry: optional flips, then `rotations` quarter turns counter-clockwise (numpy's rot90). */
export interface Dihedral {
  readonly flipX: boolean;
  readonly flipY: boolean;
  readonly rotations: number;
}

/**
 * Augments `count` RGB patches of side `size` (uint8, row-major) into float32 0..255. Draws per patch, in order,
 * from one generator seeded by `seed`: the same seed gives the same batch.
 */
export function augmentPatches(
  data: Uint8Array,
  size: number,
  count: number,
  options: AugmentOptions,
  seed: number,
): Float32Array {
  const rng = new Rng(seed);
  const pixels = size * size * 3;
  const out = new Float32Array(count * pixels);
  for (let p = 0; p < count; p++) {
    const symmetry: Dihedral = {
      flipX: options.flips && rng.chance(),
      flipY: options.flips && rng.chance(),
      rotations: options.rotations ? rng.int(4) : 0,
    };
    const patch = out.subarray(p * pixels, (p + 1) * pixels);
    transformSquare(data.subarray(p * pixels, (p + 1) * pixels), patch, size, symmetry);
    colourJitter(patch, options, rng);
  }
  return out;
}

/** Writes `src` (size x size x 3) transformed by `symmetry` into `dst`: an exact permutation of pixels. */
export function transformSquare(
  src: ArrayLike<number>,
  dst: { [i: number]: number },
  size: number,
  symmetry: Dihedral,
): void {
  const last = size - 1;
  const k = ((symmetry.rotations % 4) + 4) % 4;
  for (let i = 0; i < size; i++) {
    for (let j = 0; j < size; j++) {
      // Output (i, j) of rot90^k reads the flipped image at (r, c).
      let r = i;
      let c = j;
      if (k === 1) [r, c] = [j, last - i];
      else if (k === 2) [r, c] = [last - i, last - j];
      else if (k === 3) [r, c] = [last - j, i];
      if (symmetry.flipY) r = last - r;
      if (symmetry.flipX) c = last - c;
      const from = (r * size + c) * 3;
      const to = (i * size + j) * 3;
      dst[to] = src[from];
      dst[to + 1] = src[from + 1];
      dst[to + 2] = src[from + 2];
    }
  }
}

type Jitter = (patch: Float32Array, factor: number) => void;

/** torchvision ColorJitter without hue: brightness, contrast and saturation in a random order, clamped to 0..255. */
function colourJitter(patch: Float32Array, options: AugmentOptions, rng: Rng): void {
  const steps: [number, Jitter][] = [
    [options.brightness, brightness],
    [options.contrast, contrast],
    [options.saturation, saturation],
  ];
  rng.shuffle(steps);
  for (const [strength, apply] of steps) {
    if (strength > 0) apply(patch, rng.uniform(Math.max(0, 1 - strength), 1 + strength));
  }
}

function brightness(patch: Float32Array, factor: number): void {
  for (let k = 0; k < patch.length; k++) patch[k] = clamp255(patch[k] * factor);
}

/** Blends with the mean grey level of the patch. */
function contrast(patch: Float32Array, factor: number): void {
  let sum = 0;
  for (let k = 0; k < patch.length; k += 3) sum += grey(patch, k);
  const mean = sum / (patch.length / 3);
  for (let k = 0; k < patch.length; k++) patch[k] = clamp255(factor * patch[k] + (1 - factor) * mean);
}

/** Blends each pixel with its own grey level. */
function saturation(patch: Float32Array, factor: number): void {
  for (let k = 0; k < patch.length; k += 3) {
    const g = (1 - factor) * grey(patch, k);
    patch[k] = clamp255(factor * patch[k] + g);
    patch[k + 1] = clamp255(factor * patch[k + 1] + g);
    patch[k + 2] = clamp255(factor * patch[k + 2] + g);
  }
}

/** ITU-R 601 luma, as torchvision's rgb_to_grayscale. */
function grey(patch: Float32Array, k: number): number {
  return 0.299 * patch[k] + 0.587 * patch[k + 1] + 0.114 * patch[k + 2];
}

function clamp255(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : v;
}
