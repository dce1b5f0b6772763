// The image encoder f_I: a ResNet-style CNN over H&E spot patches (ResNet-18 topology, widths from the config),
// written as functions over named params so the same code trains on wasm, libtensorflow and (later) in workers.
//
// Layout: stem conv 7x7/2 + BN + ReLU + max-pool 3x3/2 ('same'), then stages of basic blocks (two 3x3 convs with
// BN; the first block of every stage after the first has stride 2; a 1x1 projection + BN on the shortcut where
// the shape changes), then a global average pool -> [B, lastWidth]. Convs have no bias: BN follows each.
// BatchNorm is our own op (ops/batch-norm.ts): tf.layers' BN is several times slower to train on wasm.

import * as tf from '@tensorflow/tfjs';
import type { ImageEncoderConfig } from '../config.js';
import { batchNormInfer, batchNormTrain } from '../ops/batch-norm.js';
import type { ParamStore } from '../params.js';
import { normalArray, type Rng } from '../random.js';
import { fusedElementwise } from '../webgpu/elementwise.js';

/** ImageNet statistics (RGB, 0..1 scale), as the ImageNet-style normalisation of MERU and BLEEP. */
export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

interface Block {
  readonly name: string;
  readonly stride: number;
  /** Whether the shortcut needs a 1x1 projection (stride or width change). */
  readonly project: boolean;
}

export class ImageEncoder {
  readonly outputWidth: number;
  private readonly blocks: Block[] = [];

  /** Creates the params under `prefix` in `store`, He-normal convs from `rng`. */
  constructor(
    private readonly store: ParamStore,
    private readonly config: ImageEncoderConfig,
    rng: Rng,
    private readonly prefix = 'image',
  ) {
    addConv(store, `${prefix}.stem.conv`, 7, 3, config.stemWidth, rng);
    addBatchNorm(store, `${prefix}.stem.bn`, config.stemWidth);
    let width = config.stemWidth;
    config.stageWidths.forEach((stageWidth, s) => {
      for (let b = 0; b < config.blocksPerStage[s]; b++) {
        const stride = s > 0 && b === 0 ? 2 : 1;
        const block = {
          name: `${prefix}.stage${s + 1}.block${b + 1}`,
          stride,
          project: stride !== 1 || width !== stageWidth,
        };
        addBasicBlock(store, block, width, stageWidth, rng);
        this.blocks.push(block);
        width = stageWidth;
      }
    });
    this.outputWidth = width;
  }

  /**
   * Patches [B, N, N, 3], RGB in 0..255 (uint8 values as int32 or float32; augmentations give floats) ->
   * features [B, outputWidth]. In training mode BatchNorm uses batch statistics and updates its running ones.
   */
  forward(patches: tf.Tensor4D, training: boolean): tf.Tensor2D {
    const { inputSize } = this.config;
    const [, h, w, channels] = patches.shape;
    if (channels !== 3 || h !== inputSize || w !== inputSize) {
      throw new Error(`image encoder: patches must be [B, ${inputSize}, ${inputSize}, 3], got [${patches.shape}]`);
    }
    return tf.tidy(() => {
      const p = this.prefix;
      let x = normaliseImageNet(patches);
      x = tf.relu(this.convBn(x, `${p}.stem.conv`, `${p}.stem.bn`, 2, training));
      x = tf.maxPool(x, 3, 2, 'same');
      for (const block of this.blocks) x = this.basicBlock(x, block, training);
      // Global average pool as one avgPool (a single pass on wasm, unlike mean over axes 1, 2).
      const [b, fh, fw, c] = x.shape;
      return tf.reshape(tf.avgPool(x, [fh, fw], 1, 'valid'), [b, c]) as tf.Tensor2D;
    });
  }

  private basicBlock(x: tf.Tensor4D, block: Block, training: boolean): tf.Tensor4D {
    const { name, stride } = block;
    let y = tf.relu(this.convBn(x, `${name}.conv1`, `${name}.bn1`, stride, training));
    y = this.convBn(y, `${name}.conv2`, `${name}.bn2`, 1, training);
    const shortcut = block.project ? this.convBn(x, `${name}.proj.conv`, `${name}.proj.bn`, stride, training) : x;
    return tf.relu(tf.add(y, shortcut)) as tf.Tensor4D;
  }

  private convBn(x: tf.Tensor4D, conv: string, bn: string, stride: number, training: boolean): tf.Tensor4D {
    const y = tf.conv2d(x, this.store.get(conv) as tf.Tensor4D, stride, 'same');
    return applyBatchNorm(this.store, bn, y, training, this.config);
  }
}

/** 0..255 RGB -> (x/255 - mean) / std per channel, as one multiply-add. */
export function normaliseImageNet(patches: tf.Tensor4D): tf.Tensor4D {
  const scale = IMAGENET_STD.map((s) => 1 / (255 * s));
  const shift = IMAGENET_MEAN.map((m, c) => -m / IMAGENET_STD[c]);
  return tf.add(tf.mul(tf.cast(patches, 'float32'), tf.tensor1d(scale)), tf.tensor1d(shift));
}

// ---- params ----------------------------------------------------------------------------------------------------

function addBasicBlock(store: ParamStore, block: Block, cin: number, cout: number, rng: Rng): void {
  addConv(store, `${block.name}.conv1`, 3, cin, cout, rng);
  addBatchNorm(store, `${block.name}.bn1`, cout);
  addConv(store, `${block.name}.conv2`, 3, cout, cout, rng);
  addBatchNorm(store, `${block.name}.bn2`, cout);
  if (block.project) {
    addConv(store, `${block.name}.proj.conv`, 1, cin, cout, rng);
    addBatchNorm(store, `${block.name}.proj.bn`, cout);
  }
}

/** A k x k conv filter [k, k, cin, cout], He-normal (std sqrt(2 / fan_in)): keeps activations' scale through ReLUs. */
function addConv(store: ParamStore, name: string, k: number, cin: number, cout: number, rng: Rng): void {
  const fanIn = k * k * cin;
  store.add(name, [k, k, cin, cout], normalArray(rng, fanIn * cout, Math.sqrt(2 / fanIn)));
}

/** gamma, beta (trainable, no weight decay) and the running mean and variance (not trainable). */
export function addBatchNorm(store: ParamStore, name: string, channels: number): void {
  store.add(`${name}.gamma`, [channels], 1, { decay: false });
  store.add(`${name}.beta`, [channels], 0, { decay: false });
  store.add(`${name}.runningMean`, [channels], 0, { trainable: false });
  store.add(`${name}.runningVariance`, [channels], 1, { trainable: false });
}

/**
 * BatchNorm over N, H, W. Training: batch statistics, and the running ones move by `momentum` towards them
 * (running variance from the unbiased batch variance, as PyTorch does). Inference: the running statistics.
 */
export function applyBatchNorm(
  store: ParamStore,
  name: string,
  x: tf.Tensor4D,
  training: boolean,
  options: { bnMomentum: number; bnEpsilon: number },
): tf.Tensor4D {
  const gamma = store.get(`${name}.gamma`) as tf.Tensor1D;
  const beta = store.get(`${name}.beta`) as tf.Tensor1D;
  const runningMean = store.get(`${name}.runningMean`);
  const runningVariance = store.get(`${name}.runningVariance`);
  if (!training) {
    return batchNormInfer(
      x,
      gamma,
      beta,
      runningMean as tf.Tensor1D,
      runningVariance as tf.Tensor1D,
      options.bnEpsilon,
    );
  }
  const { y, mean, variance } = batchNormTrain(x, gamma, beta, options.bnEpsilon);
  const count = x.shape[0] * x.shape[1] * x.shape[2];
  const unbiased = count > 1 ? count / (count - 1) : 1;
  const m = options.bnMomentum;
  tf.tidy(() => {
    runningMean.assign(movedTowards(runningMean, 1 - m, mean, m));
    runningVariance.assign(movedTowards(runningVariance, 1 - m, variance, m * unbiased));
  });
  return y;
}

/** running * keep + batch * take: one shader on webgpu (three ops otherwise, for each of 40 small vectors a step). */
function movedTowards(running: tf.Tensor, keep: number, batch: tf.Tensor, take: number): tf.Tensor {
  if (tf.getBackend() === 'webgpu') {
    return fusedElementwise(
      'delstMovedTowards',
      { R: running, B: batch },
      { keep, take },
      'r * uniforms.keep + b * uniforms.take',
    );
  }
  return tf.add(tf.mul(running, keep), tf.mul(batch, take));
}
