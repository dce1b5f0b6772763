// Starting TensorFlow.js's webgpu backend in Node on Dawn (the `webgpu` package), and watching the device for
// the failures that end a run: device loss and uncaptured errors (out-of-memory above all).
//
// tfjs-backend-webgpu looks for `navigator.gpu`, which Node lacks: we provide it, and register the backend with
// the adapter and device we chose (the package's own registration asks for any adapter, software ones included).
// Both packages are imported only here, lazily, so a missing or broken dawn.node disables webgpu and nothing else.

import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { describeAdapter, type AdapterDescription } from './adapter.js';

/** Why the device can no longer be trusted: its results after this point are not used. */
export interface GpuFault {
  kind: 'device-lost' | 'out-of-memory' | 'gpu-error';
  message: string;
}

/** Dawn's entry point; it must stay referenced, or pending GPU work never completes (dawn.node ties it to it). */
let gpu: GPU | null = null;
let device: GPUDevice | null = null;
let fault: GpuFault | null = null;

/** The fault seen on the webgpu device since it started, if any. */
export function webgpuFault(): GpuFault | null {
  return fault;
}

/** Tests only: the device the webgpu backend runs on (e.g. to destroy it and simulate a device loss). */
export function webgpuDevice(): GPUDevice | null {
  return device;
}

function watch(d: GPUDevice, errorClasses: { GPUOutOfMemoryError?: unknown }): void {
  void d.lost.then((info) => {
    fault ??= { kind: 'device-lost', message: `the GPU device was lost (${info.reason}): ${info.message}`.trim() };
  });
  d.addEventListener('uncapturederror', (event) => {
    const error = (event as GPUUncapturedErrorEvent).error;
    const oom =
      typeof errorClasses.GPUOutOfMemoryError === 'function' && error instanceof errorClasses.GPUOutOfMemoryError;
    fault ??= oom
      ? { kind: 'out-of-memory', message: `the GPU ran out of memory: ${error.message}` }
      : { kind: 'gpu-error', message: `the GPU reported an error: ${error.message}` };
  });
}

/** Puts `gpu` where tfjs-backend-webgpu looks (Node 20 has no navigator; later Node versions have one without gpu). */
function exposeNavigatorGpu(g: GPU): void {
  const global = globalThis as { navigator?: { gpu?: GPU } };
  if (global.navigator) {
    if (!global.navigator.gpu) Object.defineProperty(global.navigator, 'gpu', { value: g, configurable: true });
  } else {
    Object.defineProperty(globalThis, 'navigator', { value: { gpu: g }, configurable: true, writable: true });
  }
}

/**
 * Starts the 'webgpu' backend on Dawn's high-performance adapter and makes it current. Returns null when there is
 * no adapter, or when it is a software one and `allowSoftware` is false; throws when Dawn itself fails to load.
 */
export async function startWebgpu(allowSoftware: boolean): Promise<AdapterDescription | null> {
  // tfjs first: with navigator.gpu already set, its import would register a backend of its own. (A dynamic import,
  // not a require, so that bundlers see it: the GPU check bundles the engine for a machine without node_modules.)
  type WebgpuPackage = { WebGPUBackend: typeof WebGPUBackend };
  const imported = (await import('@tensorflow/tfjs-backend-webgpu')) as WebgpuPackage & { default?: WebgpuPackage };
  const pkg = imported.default ?? imported; // Node imports its CommonJS build: the exports are on `default`
  const dawn = (await import('webgpu')) as { create(options: string[]): GPU; globals: Record<string, unknown> };
  gpu ??= dawn.create([]);
  // GPUBufferUsage, GPUMapMode, ... are globals in a browser; the backend reads them at run time.
  for (const [name, value] of Object.entries(dawn.globals)) {
    if (!(name in globalThis)) Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
  }
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) return null;
  const description = describeAdapter(adapter.info, adapter.limits);
  if (description.software && !allowSoftware) return null;

  // The adapter's own limits, not WebGPU's defaults (128 MiB per binding), as tfjs's registration asks.
  const limits = adapter.limits;
  const requiredFeatures = (['timestamp-query'] as GPUFeatureName[]).filter((f) => adapter.features.has(f));
  const d = await adapter.requestDevice({
    requiredFeatures,
    requiredLimits: {
      maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
      maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxBufferSize: limits.maxBufferSize,
      maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
      maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
      maxStorageBuffersPerShaderStage: limits.maxStorageBuffersPerShaderStage,
    },
  });
  device = d;
  fault = null;
  watch(d, dawn.globals);
  exposeNavigatorGpu(gpu);
  if (tf.findBackend('webgpu') || tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
  tf.registerBackend('webgpu', () => new pkg.WebGPUBackend(d, adapter.info), 1);
  if (!(await tf.setBackend('webgpu'))) throw new Error('the TensorFlow.js webgpu backend failed to initialise');
  await tf.ready();
  makeSyncReadsClear();
  return description;
}

/**
 * The backend's synchronous read (dataSync) needs a browser's OffscreenCanvas; in Node it fails with
 * "OffscreenCanvas is not defined". Values read before with `await tensor.data()` are cached and still returned;
 * anything else gets an error that says what to do.
 */
function makeSyncReadsClear(): void {
  const backend = tf.backend() as unknown as {
    readSync(dataId: object): unknown;
    tensorMap: { get(id: object): { values?: unknown } };
  };
  const readSync = backend.readSync.bind(backend);
  backend.readSync = (dataId: object) => {
    if (
      backend.tensorMap.get(dataId)?.values == null &&
      typeof (globalThis as { OffscreenCanvas?: unknown }).OffscreenCanvas === 'undefined'
    ) {
      throw new Error(
        'webgpu backend: a synchronous read (dataSync/arraySync) of a tensor on the GPU is not possible in Node; ' +
          'read it with `await tensor.data()` first',
      );
    }
    return readSync(dataId);
  };
}
