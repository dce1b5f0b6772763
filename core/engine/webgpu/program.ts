// Running a WGSL program of ours on tfjs-backend-webgpu 4.22: the part of its program interface
// (webgpu_program.ts) that we fill in, and one call that runs it on the current backend and returns a tensor.

import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';

export interface Program {
  variableNames: string[];
  /** WGSL fields of the uniform struct after tfjs's own (sizes and shapes), e.g. 'eps : f32,'. */
  uniforms: string;
  workgroupSize: [number, number, number];
  size: boolean;
  outputShape: number[];
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  /** One per distinct shader source: tfjs caches compiled pipelines by it. */
  shaderKey: string;
  getUserCode(): string;
}

/** A value of the uniform struct, in the order `uniforms` declares them. */
export interface Uniform {
  type: 'int32' | 'float32';
  data: number[];
}

export const int = (value: number): Uniform => ({ type: 'int32', data: [value] });
export const float = (value: number): Uniform => ({ type: 'float32', data: [value] });

/** Runs `program` on the current (webgpu) backend: one dispatch, a float32 output. */
export function runProgram(program: Program, inputs: tf.Tensor[], uniforms: Uniform[]): tf.Tensor {
  type Args = Parameters<WebGPUBackend['runWebGPUProgram']>;
  const backend = tf.backend() as unknown as WebGPUBackend;
  const info = backend.runWebGPUProgram(
    program as unknown as Args[0],
    inputs,
    'float32',
    uniforms as unknown as Args[3],
  );
  return tf.engine().makeTensorFromTensorInfo(info);
}
