// The gene encoder f_G: an MLP over the log-normalised gene panel, in the BLEEP / mclSTExp projection-head
// pattern: h = Linear(G -> hidden)(x); y = LayerNorm(h + Linear(hidden -> hidden)(Dropout(GELU(h)))).

import * as tf from '@tensorflow/tfjs';
import type { GeneEncoderConfig } from '../config.js';
import type { ParamStore } from '../params.js';
import { normalArray, type Rng } from '../random.js';

export class GeneEncoder {
  readonly outputWidth: number;

  constructor(
    private readonly store: ParamStore,
    private readonly config: GeneEncoderConfig,
    rng: Rng,
    private readonly prefix = 'gene',
  ) {
    addLinear(store, `${prefix}.fc1`, config.panelSize, config.hidden, rng);
    addLinear(store, `${prefix}.fc2`, config.hidden, config.hidden, rng);
    addLayerNorm(store, `${prefix}.norm`, config.hidden);
    this.outputWidth = config.hidden;
  }

  /**
   * Expression [B, panelSize] (log-normalised) -> features [B, hidden]. Dropout is active in training only, with
   * masks drawn from `dropoutSeed` so that a step repeats exactly.
   */
  forward(expression: tf.Tensor2D, training: boolean, dropoutSeed = 0): tf.Tensor2D {
    if (expression.rank !== 2 || expression.shape[1] !== this.config.panelSize) {
      throw new Error(`gene encoder: expression must be [B, ${this.config.panelSize}], got [${expression.shape}]`);
    }
    return tf.tidy(() => {
      const p = this.prefix;
      const h = linear(this.store, `${p}.fc1`, tf.cast(expression, 'float32'));
      let u = gelu(h);
      if (training && this.config.dropout > 0)
        u = tf.dropout(u, this.config.dropout, undefined, dropoutSeed) as tf.Tensor2D;
      const y = tf.add(h, linear(this.store, `${p}.fc2`, u)) as tf.Tensor2D;
      return layerNorm(this.store, `${p}.norm`, y, this.config.layerNormEpsilon);
    });
  }
}

/**
 * GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). tfjs has no gelu op, and these basic
 * ops have gradients on every backend.
 */
export function gelu<T extends tf.Tensor>(x: T): T {
  return tf.tidy(() => {
    const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
    return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1)) as T;
  });
}

/** Weight [in, out] ~ N(0, 1/in) (LeCun normal: unit-scale outputs for unit-scale inputs) and a zero bias. */
export function addLinear(store: ParamStore, name: string, inputs: number, outputs: number, rng: Rng): void {
  store.add(`${name}.weight`, [inputs, outputs], normalArray(rng, inputs * outputs, 1 / Math.sqrt(inputs)));
  store.add(`${name}.bias`, [outputs], 0, { decay: false });
}

export function linear(store: ParamStore, name: string, x: tf.Tensor2D): tf.Tensor2D {
  const weight = store.get(`${name}.weight`) as tf.Tensor2D;
  return tf.add(tf.matMul(x, weight), store.get(`${name}.bias`)) as tf.Tensor2D;
}

export function addLayerNorm(store: ParamStore, name: string, width: number): void {
  store.add(`${name}.gamma`, [width], 1, { decay: false });
  store.add(`${name}.beta`, [width], 0, { decay: false });
}

/** LayerNorm over the last axis (an innermost reduction: fast on every backend). */
export function layerNorm(store: ParamStore, name: string, x: tf.Tensor2D, epsilon: number): tf.Tensor2D {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true);
    const normed = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, epsilon)));
    return tf.add(tf.mul(normed, store.get(`${name}.gamma`)), store.get(`${name}.beta`)) as tf.Tensor2D;
  });
}
