// Inference over a dataset: backbone features (what a frozen-backbone fine-tune caches and linear probes read) and
// per-spot embeddings of one modality, in dataset row order, BatchNorm on its running statistics, no dropout and
// no augmentation.

import * as tf from '@tensorflow/tfjs';
import { backendFault } from './backend.js';
import type { SpotDataset } from './dataset.js';
import { logMap0 } from './lorentz.js';
import type { DelstModel } from './models/delst-model.js';

export type EmbedModality = 'image' | 'gene';

export interface SpotEmbeddings {
  readonly modality: EmbedModality;
  /** Spots (rows). */
  readonly count: number;
  /** D, the width of the embedding space. */
  readonly dim: number;
  /** Width of the backbone features. */
  readonly featureDim: number;
  /** count x D hyperboloid space components (clip mode: the raw projections). */
  readonly space: Float32Array;
  /** count x D tangent vectors at the origin, logMap0(space) (clip mode: the raw projections again). */
  readonly tangent: Float32Array;
  /** count x featureDim backbone features before the projection. */
  readonly features: Float32Array;
}

export interface InferenceOptions {
  /** Spots per forward pass (default 64). */
  readonly batchSize?: number;
  readonly onProgress?: (done: number, total: number) => void;
}

/** Rows [start, end) of a row-major matrix of `width` columns, as a [rows, width] tensor. */
function rowsTensor(data: Float32Array, width: number, start: number, end: number): tf.Tensor2D {
  return tf.tensor2d(data.subarray(start * width, end * width), [end - start, width]);
}

/** Rows [start, end) of the dataset's patches as a float32 [rows, N, N, 3] tensor (0..255). */
function patchTensor(dataset: SpotDataset, start: number, end: number): tf.Tensor4D {
  if (!dataset.patches) throw new Error('the dataset was built without patches');
  const n = dataset.patchSize;
  const bytes = dataset.patches.subarray(start * n * n * 3, end * n * n * 3);
  return tf.tensor4d(Float32Array.from(bytes), [end - start, n, n, 3]);
}

function checkFits(model: DelstModel, dataset: SpotDataset, needPatches: boolean): void {
  if (dataset.panelSize !== model.config.gene.panelSize) {
    throw new Error(`the dataset has ${dataset.panelSize} panel genes, the model reads ${model.config.gene.panelSize}`);
  }
  if (needPatches && dataset.patchSize !== model.config.image.inputSize) {
    throw new Error(
      `the dataset's patches are ${dataset.patchSize} px, the model reads ${model.config.image.inputSize}`,
    );
  }
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * The values of the tensors `compute` returns, read asynchronously (webgpu in Node has no synchronous read); every
 * tensor is disposed. Throws when the GPU failed meanwhile: its results cannot be trusted.
 */
async function read(compute: () => tf.Tensor[]): Promise<Float32Array[]> {
  const tensors = tf.tidy(compute);
  try {
    const values = await Promise.all(tensors.map((t) => t.data() as Promise<Float32Array>));
    const fault = backendFault();
    if (fault) throw new Error(fault);
    return values;
  } finally {
    tf.dispose(tensors);
  }
}

/**
 * Backbone features of every spot with the encoders in inference mode: image [size x imageWidth] and gene
 * [size x geneWidth], row-major.
 */
export async function backboneFeatures(
  model: DelstModel,
  dataset: SpotDataset,
  options: InferenceOptions = {},
): Promise<{ image: Float32Array; gene: Float32Array; imageWidth: number; geneWidth: number }> {
  checkFits(model, dataset, true);
  const batch = options.batchSize ?? 64;
  const imageWidth = model.imageEncoder.outputWidth;
  const geneWidth = model.geneEncoder.outputWidth;
  const image = new Float32Array(dataset.size * imageWidth);
  const gene = new Float32Array(dataset.size * geneWidth);
  for (let start = 0; start < dataset.size; start += batch) {
    const end = Math.min(dataset.size, start + batch);
    const [f, g] = await read(() => [
      model.imageEncoder.forward(patchTensor(dataset, start, end), false),
      model.geneEncoder.forward(rowsTensor(dataset.expression, dataset.panelSize, start, end), false),
    ]);
    image.set(f, start * imageWidth);
    gene.set(g, start * geneWidth);
    options.onProgress?.(end, dataset.size);
    await yieldToEventLoop();
  }
  return { image, gene, imageWidth, geneWidth };
}

/** Embeddings of one modality for every spot of the dataset, in row order. */
export async function embedDataset(
  model: DelstModel,
  dataset: SpotDataset,
  modality: EmbedModality,
  options: InferenceOptions = {},
): Promise<SpotEmbeddings> {
  checkFits(model, dataset, modality === 'image');
  const batch = options.batchSize ?? 64;
  const dim = model.config.embedDim;
  const featureDim = modality === 'image' ? model.imageEncoder.outputWidth : model.geneEncoder.outputWidth;
  const otherWidth = modality === 'image' ? model.geneEncoder.outputWidth : model.imageEncoder.outputWidth;
  const space = new Float32Array(dataset.size * dim);
  const tangent = new Float32Array(dataset.size * dim);
  const features = new Float32Array(dataset.size * featureDim);
  for (let start = 0; start < dataset.size; start += batch) {
    const end = Math.min(dataset.size, start + batch);
    const [z, v, own] = await read(() => {
      const f =
        modality === 'image'
          ? model.imageEncoder.forward(patchTensor(dataset, start, end), false)
          : model.geneEncoder.forward(rowsTensor(dataset.expression, dataset.panelSize, start, end), false);
      // The head maps both modalities at once; the other side gets zeros and is ignored.
      const other = tf.zeros([end - start, otherWidth]) as tf.Tensor2D;
      const e = modality === 'image' ? model.embedFeatures(f, other) : model.embedFeatures(other, f);
      const zs = modality === 'image' ? e.image : e.gene;
      return [zs, e.curvature ? logMap0(zs, e.curvature) : zs, f];
    });
    space.set(z, start * dim);
    tangent.set(v, start * dim);
    features.set(own, start * featureDim);
    options.onProgress?.(end, dataset.size);
    await yieldToEventLoop();
  }
  return { modality, count: dataset.size, dim, featureDim, space, tangent, features };
}
