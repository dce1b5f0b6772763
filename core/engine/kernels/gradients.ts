// Gradients tfjs 4.22 lacks on every backend for ops with boolean outputs (comparisons and logical ops). Without
// them, tf.where(tf.greater(x, eps), ...) inside a differentiated function throws "gradient function not found
// for Greater", although the derivative is simply zero (TensorFlow marks these ops non-differentiable).

import * as tf from '@tensorflow/tfjs';

const BINARY = ['Greater', 'Less', 'LessEqual', 'Equal', 'NotEqual', 'LogicalAnd', 'LogicalOr', 'LogicalXor'];
const UNARY = ['LogicalNot'];

/** Registers zero gradients for the boolean-valued ops tfjs leaves without one. Idempotent; backend-independent. */
export function registerMissingGradients(): void {
  for (const kernelName of BINARY) {
    if (tf.getGradient(kernelName)) continue;
    tf.registerGradient({
      kernelName,
      inputsToSave: ['a', 'b'],
      gradFunc: (_dy, saved) => ({ a: () => tf.zeros(saved[0].shape), b: () => tf.zeros(saved[1].shape) }),
    });
  }
  for (const kernelName of UNARY) {
    if (tf.getGradient(kernelName)) continue;
    tf.registerGradient({
      kernelName,
      inputsToSave: ['x'],
      gradFunc: (_dy, saved) => ({ x: () => tf.zeros(saved[0].shape) }),
    });
  }
}
