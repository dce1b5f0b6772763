// One webgpu dispatch for an elementwise formula over same-shaped tensors, where tfjs would run an op (and upload a
// scalar tensor) per arithmetic step: on a GPU our training step is bound by the host's cost per dispatch.

import type * as tf from '@tensorflow/tfjs';
import { float, runProgram, type Program } from './program.js';

const WORKGROUP = 128;

/**
 * `expression` (WGSL) evaluated per element on the current (webgpu) backend, as a float32 tensor of the inputs'
 * shape. Each input is read into a variable named by its key in lower case (keys: capitalised identifiers, e.g.
 * `{ M: m, G: g }` gives `m` and `g`); each constant is `uniforms.<key>`. `key` names the shader for tfjs's cache:
 * one per expression.
 */
export function fusedElementwise(
  key: string,
  inputs: Record<string, tf.Tensor>,
  constants: Record<string, number>,
  expression: string,
): tf.Tensor {
  const names = Object.keys(inputs);
  const shape = inputs[names[0]].shape;
  const size = shape.reduce((a, b) => a * b, 1);
  const reads = names.map((n) => `let ${n.toLowerCase()} = get${n}ByOutputIndex(index);`).join('\n        ');
  const program: Program = {
    variableNames: names,
    uniforms: Object.keys(constants)
      .map((c) => `${c} : f32,`)
      .join(' '),
    workgroupSize: [WORKGROUP, 1, 1],
    size: true,
    outputShape: [...shape],
    dispatchLayout: { x: shape.map((_, i) => i) },
    dispatch: [Math.ceil(size / WORKGROUP), 1, 1],
    shaderKey: key,
    getUserCode: () => `
    fn main(index : i32) {
      if (index < uniforms.size) {
        ${reads}
        setOutputAtIndex(index, ${expression});
      }
    }`,
  };
  return runProgram(program, Object.values(inputs), Object.values(constants).map(float));
}
