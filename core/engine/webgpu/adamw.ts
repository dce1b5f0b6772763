// AdamW's update on webgpu in three shaders per parameter (the two moments, then the parameter) instead of about
// fourteen elementwise ops, each with its scalar uploaded as a tensor. On a GPU a training step of our models is
// bound by the host's cost per dispatch rather than by arithmetic, and the optimizer was a fifth of the dispatches.
// Same arithmetic in the same order as AdamW.apply's generic path (optimizer.ts), so the results agree to rounding.

import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';

/** The per-step constants of one AdamW update (optimizer.ts computes them). */
export interface AdamWStepConstants {
  beta1: number;
  beta2: number;
  epsilon: number;
  /** 1 - lr wd for a decayed parameter, 1 otherwise. */
  decayFactor: number;
  /** lr / (1 - beta1^t). */
  stepSize: number;
  /** sqrt(1 - beta2^t). */
  sqrtCorrection2: number;
}

type Program = Parameters<WebGPUBackend['runWebGPUProgram']>[0];
type Uniforms = Parameters<WebGPUBackend['runWebGPUProgram']>[3];

const WORKGROUP = 128;

/** An elementwise program over same-shaped inputs: `expression` (WGSL over the inputs' values and uniforms). */
function elementwise(
  key: string,
  names: string[],
  uniforms: string,
  expression: string,
  shape: readonly number[],
): Program {
  const size = shape.reduce((a, b) => a * b, 1);
  const reads = names.map((n) => `let ${n.toLowerCase()} = get${n}ByOutputIndex(index);`).join('\n        ');
  return {
    variableNames: names,
    uniforms,
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
}

function run(backend: WebGPUBackend, program: Program, inputs: tf.Tensor[], uniforms: number[]): tf.Tensor {
  const data = uniforms.map((value) => ({ type: 'float32', data: [value] })) as unknown as Uniforms;
  return tf.engine().makeTensorFromTensorInfo(backend.runWebGPUProgram(program, inputs, 'float32', data));
}

/** New (param, m, v) for param `p` with gradient `g`; the caller assigns them. */
export function adamwUpdateWebgpu(
  p: tf.Tensor,
  g: tf.Tensor,
  m: tf.Tensor,
  v: tf.Tensor,
  c: AdamWStepConstants,
): { param: tf.Tensor; m: tf.Tensor; v: tf.Tensor } {
  const backend = tf.backend() as unknown as WebGPUBackend;
  const shape = p.shape;
  const m1 = run(
    backend,
    elementwise('delstAdamWM', ['M', 'G'], 'b : f32, rest : f32,', 'm * uniforms.b + g * uniforms.rest', shape),
    [m, g],
    [c.beta1, 1 - c.beta1],
  );
  const v1 = run(
    backend,
    elementwise('delstAdamWV', ['V', 'G'], 'b : f32, rest : f32,', 'v * uniforms.b + (g * g) * uniforms.rest', shape),
    [v, g],
    [c.beta2, 1 - c.beta2],
  );
  const param = run(
    backend,
    elementwise(
      'delstAdamWP',
      ['P', 'M', 'V'],
      'decay : f32, stepSize : f32, correction : f32, eps : f32,',
      'p * uniforms.decay - (m / (sqrt(v) / uniforms.correction + uniforms.eps)) * uniforms.stepSize',
      shape,
    ),
    [p, m1, v1],
    [c.decayFactor, c.stepSize, c.sqrtCorrection2, c.epsilon],
  );
  return { param, m: m1, v: v1 };
}
