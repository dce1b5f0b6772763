// Batch sizing for a GPU adapter: every tensor of a training step is one GPU buffer, and a shader can bind at most
// maxStorageBufferBindingSize bytes of it (WebGPU validates this; beyond it the dispatch is dropped). The largest
// tensors scale with the batch: the image activations at the stem's resolution. (The im2col of the filter
// gradient is split by the kernel itself; the B x B loss matrices stay small.)

import type { ModelConfig } from '../config.js';
import type { AdapterDescription } from './adapter.js';

/** Floats per spot of the largest activation of the model (input, stem, max-pool, every stage; gene MLP). */
export function largestActivationPerSpot(config: ModelConfig): number {
  const { image, gene } = config;
  let size = image.inputSize;
  let largest = size * size * 3;
  size = Math.ceil(size / 2);
  largest = Math.max(largest, size * size * image.stemWidth); // the stem's conv, BatchNorm and ReLU outputs
  size = Math.ceil(size / 2);
  image.stageWidths.forEach((width, stage) => {
    if (stage > 0) size = Math.ceil(size / 2);
    largest = Math.max(largest, size * size * width);
  });
  return Math.max(largest, gene.panelSize, gene.hidden);
}

/** Headroom for the padded and interleaved copies the gradients make of an activation. */
const SLACK = 1.25;

/** The largest batch whose tensors each fit one binding of the adapter (at least 0). */
export function maxBatchForAdapter(config: ModelConfig, adapter: AdapterDescription): number {
  const limit = Math.min(adapter.maxStorageBufferBindingSize, adapter.maxBufferSize);
  return Math.floor(limit / (4 * largestActivationPerSpot(config) * SLACK));
}
