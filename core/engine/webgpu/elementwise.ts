// One webgpu dispatch for an elementwise formula over same-shaped tensors, where tfjs would run an op (and upload a
// scalar tensor) per arithmetic step: on a GPU our training step is bound by the host's cost per dispatch.

import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';

type Program = Parameters<WebGPUBackend['runWebGPUProgram']>[0];
type Uniforms = Parameters<WebGPUBackend['runWebGPUProgram']>[3];

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
  const program = {
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
  } as unknown as Program;
  const uniforms = Object.values(constants).map((value) => ({ type: 'float32', data: [value] })) as unknown as Uniforms;
  const backend = tf.backend() as unknown as WebGPUBackend;
  const info = backend.runWebGPUProgram(program, Object.values(inputs), 'float32', uniforms);
  return tf.engine().makeTensorFromTensorInfo(info);
}
