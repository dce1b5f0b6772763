// Choosing and starting the TensorFlow.js backend: libtensorflow through tfjs-node-gpu on a CUDA GPU, WebGPU (Dawn)
// on any hardware GPU adapter, the wasm backend (with our gradient kernels) everywhere else.

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { getThreadsCount, setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { unpackedPath } from '../resources.js';
import { registerMissingGradients } from './kernels/gradients.js';
import { registerWasmKernels } from './kernels/register.js';
import { adapterLine, probeAdapter, type AdapterDescription } from './webgpu/adapter.js';
import { registerWebgpuKernels } from './webgpu/kernels.js';
import { startWebgpu, webgpuFault } from './webgpu/start.js';

export type BackendChoice = 'auto' | 'tensorflow' | 'webgpu' | 'wasm';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'tensorflow', 'webgpu', 'wasm'];

export interface BackendInfo {
  name: 'tensorflow' | 'webgpu' | 'wasm';
  /**
   * Human-readable description of where the work runs, e.g. 'CPU via wasm SIMD, 1 thread' or
   * 'GPU via WebGPU: nvidia ampere (NVIDIA GeForce RTX 3060), hardware'.
   */
  device: string;
  /** CPU threads the backend computes with (wasm: XNNPACK's pool; libtensorflow: all cores; webgpu: 1). */
  threads: number;
  /** webgpu only: the adapter (vendor, architecture, software or hardware, buffer limits). */
  adapter?: AdapterDescription;
}

const require = createRequire(import.meta.url);

let current: BackendInfo | null = null;
let pending: Promise<BackendInfo> | null = null;

/**
 * Folder of the wasm package's .wasm binaries, with a trailing separator (setWasmPaths wants a prefix); outside the
 * asar in a packaged app, as are the files the wasm worker threads read.
 */
export function wasmDistFolder(): string {
  return unpackedPath(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm'))) + path.sep;
}

async function tryTensorflow(): Promise<BackendInfo | null> {
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      // The packages register the 'tensorflow' backend on import; the binding fails to load without libtensorflow.
      await import(pkg);
    } catch {
      continue;
    }
    if (!(await tf.setBackend('tensorflow'))) continue;
    await tf.ready();
    // tfjs-node-gpu falls back to the CPU where CUDA is missing; its backend says which it got.
    if ((tf.backend() as unknown as { isUsingGpuDevice?: boolean }).isUsingGpuDevice) {
      return { name: 'tensorflow', device: 'CUDA GPU via libtensorflow', threads: os.availableParallelism() };
    }
    return { name: 'tensorflow', device: 'CPU via libtensorflow', threads: os.availableParallelism() };
  }
  return null;
}

/**
 * Writes the pthread worker script of the threaded wasm build to a cache file and returns its path.
 *
 * tfjs hands Emscripten a `blob:` URL for the worker (Node's worker_threads cannot start one) and a Blob of the
 * factory source as the script each worker imports (the worker's importScripts reads files only). Our copy of the
 * worker script is the package's own, with its 'load' handler pointed at the package's threaded factory file.
 */
function threadedWorkerScript(): string {
  const contents = (
    require('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.worker.js') as {
      wasmWorkerContents: string;
    }
  ).wasmWorkerContents;
  const factory = unpackedPath(
    require.resolve('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.js'),
  );
  // The template literal turned the source's `\n` escapes into newlines inside string literals: escape them back.
  const script =
    contents.replace(/\n/g, '\\n') +
    '\n;(() => { const load = self.onmessage; self.onmessage = (e) => {' +
    ` if (e.data && e.data.cmd === 'load' && typeof e.data.urlOrBlob !== 'string') e.data.urlOrBlob = ${JSON.stringify(factory)};` +
    ' return load(e); }; })();\n';
  const hash = createHash('sha256').update(script).digest('hex').slice(0, 16);
  const file = path.join(os.tmpdir(), `delst-tfjs-wasm-worker-${hash}.cjs`);
  if (!fs.existsSync(file)) {
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, script);
    fs.renameSync(tmp, file);
  }
  return file;
}

/**
 * Runs `init` (which starts the threaded wasm module) with the two runtime shims threaded wasm needs in Node:
 * the worker's blob: URL replaced by a file, and the core count doubled, because the backend caps its thread
 * pool at half the logical cores (a hyper-threading assumption that leaves a 2-vCPU machine at 1 thread).
 */
async function withThreadedWasmShims<T>(init: () => Promise<T>): Promise<T> {
  const workerFile = threadedWorkerScript();
  const createObjectURL = URL.createObjectURL;
  const cpus = os.cpus;
  URL.createObjectURL = (obj: Blob) =>
    obj instanceof Blob && obj.type === 'application/javascript' ? workerFile : createObjectURL(obj);
  os.cpus = () => [...cpus(), ...cpus()];
  try {
    return await init();
  } finally {
    URL.createObjectURL = createObjectURL;
    os.cpus = cpus;
  }
}

/**
 * Emscripten refs each worker that runs a pthread, and XNNPACK's pool threads never end, so the process would
 * never exit on its own. The main thread waits for them synchronously inside each op, so they need no ref.
 */
function unrefPoolWorkers(): void {
  const module = (tf.backend() as unknown as { wasm: { PThread?: { runningWorkers?: { unref(): void }[] } } }).wasm;
  for (const worker of module.PThread?.runningWorkers ?? []) worker.unref();
}

function defaultThreads(): number {
  const fromEnv = Number(process.env.DELST_WASM_THREADS);
  if (Number.isInteger(fromEnv) && fromEnv > 0) return fromEnv;
  return os.availableParallelism();
}

async function startWasm(requestedThreads: number): Promise<BackendInfo> {
  setWasmPaths(wasmDistFolder());
  const threaded = requestedThreads > 1;
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', threaded);
  setThreadsCount(requestedThreads);
  let ok = false;
  if (threaded) {
    try {
      ok = await withThreadedWasmShims(() => tf.setBackend('wasm'));
    } catch {
      ok = false;
    }
    if (ok) unrefPoolWorkers();
    else {
      // Multithreaded wasm did not start (e.g. no writable temp folder): run on one thread.
      tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
      setThreadsCount(1);
    }
  }
  if (!ok) ok = await tf.setBackend('wasm');
  if (!ok) throw new Error('the TensorFlow.js wasm backend failed to initialise');
  await tf.ready();
  registerWasmKernels();
  const threads = getThreadsCount();
  return { name: 'wasm', device: `CPU via wasm SIMD, ${threads} thread${threads === 1 ? '' : 's'}`, threads };
}

/** The webgpu backend on Dawn's adapter, with our kernels; null where there is none (or only a software one). */
async function tryWebgpu(allowSoftware: boolean): Promise<BackendInfo | null> {
  const adapter = await startWebgpu(allowSoftware);
  if (!adapter) return null;
  registerWebgpuKernels();
  return { name: 'webgpu', device: adapterLine(adapter), threads: 1, adapter };
}

/** `--backend webgpu`: any adapter, a software one included (the device line says so). */
async function forceWebgpu(): Promise<BackendInfo> {
  let info: BackendInfo | null;
  try {
    info = await tryWebgpu(true);
  } catch (error) {
    throw new Error(
      `backend "webgpu" requested, but Dawn (the webgpu package) failed to start: ${(error as Error).message}. ` +
        'Use --backend wasm.',
      { cause: error },
    );
  }
  if (info) return info;
  throw new Error(
    'backend "webgpu" requested, but Dawn found no WebGPU adapter: no GPU with a Vulkan, Metal or Direct3D 12 ' +
      'driver it accepts. Use --backend wasm (on Linux without a GPU, a software adapter for testing: ' +
      'scripts/get-lavapipe.sh, then VK_ICD_FILENAMES=.cache/lavapipe/lvp_icd.json).',
  );
}

/**
 * `auto`: webgpu only on a hardware adapter. Dawn is probed in a child process first, so that machines without
 * a GPU neither load it nor see its driver warnings; any failure leaves webgpu out.
 */
async function autoWebgpu(): Promise<BackendInfo | null> {
  if (process.env.DELST_WEBGPU === '0') return null;
  const probe = await probeAdapter();
  if (!probe.adapter || probe.adapter.software) return null;
  try {
    return await tryWebgpu(false);
  } catch {
    return null;
  }
}

async function start(choice: BackendChoice, threads: number): Promise<BackendInfo> {
  if (choice === 'webgpu') return forceWebgpu();
  if (choice === 'tensorflow' || choice === 'auto') {
    const info = await tryTensorflow();
    // libtensorflow on the CPU comes after a GPU adapter, not before.
    if (info && (choice === 'tensorflow' || info.device.startsWith('CUDA'))) return info;
    if (choice === 'auto') {
      const gpu = await autoWebgpu();
      if (gpu) return gpu;
      if (info) {
        await tf.setBackend('tensorflow');
        return info;
      }
    }
    if (choice === 'tensorflow') {
      throw new Error(
        'backend "tensorflow" requested, but neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node loads. ' +
          'Install one with internet access (npm install @tensorflow/tfjs-node, or @tensorflow/tfjs-node-gpu with ' +
          'CUDA 11.8 and cuDNN 8), or use --backend wasm.',
      );
    }
  }
  return startWasm(threads);
}

export interface InitOptions {
  wasmThreads?: number;
}

/**
 * Selects and initialises the backend once per process: 'auto' takes libtensorflow on a CUDA GPU, else webgpu on a
 * hardware adapter, else libtensorflow on the CPU where tfjs-node loads, else wasm. Later calls return the backend
 * already chosen, and throw if a different one is demanded. The engine reads tensors only asynchronously
 * (`await tensor.data()`), as webgpu in Node requires: a synchronous read there throws (webgpu/start.ts).
 */
export async function initBackend(choice: BackendChoice = 'auto', options: InitOptions = {}): Promise<BackendInfo> {
  if (current && (choice === 'auto' || choice === current.name)) {
    if (tf.getBackend() !== current.name) await tf.setBackend(current.name);
    return current;
  }
  if (current) throw new Error(`backend already initialised as "${current.name}", cannot switch to "${choice}"`);
  if (!pending) {
    pending = start(choice, options.wasmThreads ?? defaultThreads()).then(
      (info) => {
        registerMissingGradients();
        current = info;
        return info;
      },
      (err: unknown) => {
        pending = null;
        throw err;
      },
    );
  }
  const info = await pending;
  if (choice !== 'auto' && choice !== info.name) {
    throw new Error(`backend already initialised as "${info.name}", cannot switch to "${choice}"`);
  }
  return info;
}

/**
 * Whether the backend's device has failed (webgpu: device lost, out of memory, an uncaptured GPU error): a message
 * for the user, or null. Results computed after such a failure cannot be trusted.
 */
export function backendFault(): string | null {
  if (current?.name !== 'webgpu') return null;
  return webgpuFault()?.message ?? null;
}

/** Tests only: make the pure-JS 'cpu' backend current (the reference for gradient checks; far too slow to train). */
export async function useCpuReferenceBackend(): Promise<void> {
  await tf.setBackend('cpu');
  await tf.ready();
}
