// Which WebGPU adapter Dawn offers, and whether it is a GPU or a software rasteriser (SwiftShader, llvmpipe /
// lavapipe, WARP) that must never be picked by `--backend auto`.

import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

const require = createRequire(import.meta.url);

/** What the app and the CLI show about the adapter the webgpu backend runs on. */
export interface AdapterDescription {
  vendor: string;
  architecture: string;
  /** The driver's own words, e.g. 'NVIDIA GeForce RTX 3060' or 'SwiftShader driver 5.0.0'. */
  description: string;
  /** A CPU implementation of WebGPU/Vulkan/D3D: correct but slow, never chosen by 'auto'. */
  software: boolean;
  /** Bytes: the largest buffer, and the largest buffer one shader may bind. */
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
}

/** The fields of GPUAdapterInfo we read (Dawn fills them; older browsers lacked isFallbackAdapter). */
export interface AdapterInfoLike {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}

const SOFTWARE_NAMES = /swiftshader|llvmpipe|lavapipe|softpipe|basic render driver|\bwarp\b|^software$/i;

/** True for a fallback adapter or a known software rasteriser (by vendor, architecture, device or description). */
export function isSoftwareAdapter(info: AdapterInfoLike): boolean {
  if (info.isFallbackAdapter) return true;
  return [info.vendor, info.architecture, info.device, info.description].some((s) => !!s && SOFTWARE_NAMES.test(s));
}

/**
 * Tests only: DELST_TEST_ADAPTER_AS_GPU=1 takes a software adapter for a GPU, so that what `--backend auto` does on a
 * GPU (the probe, the start, our kernels, the device line) runs on a CPU Vulkan driver.
 */
const takeSoftwareForGpu = () => process.env.DELST_TEST_ADAPTER_AS_GPU === '1';

export function describeAdapter(
  info: AdapterInfoLike,
  limits: { maxBufferSize: number; maxStorageBufferBindingSize: number },
): AdapterDescription {
  return {
    vendor: info.vendor || 'unknown vendor',
    architecture: info.architecture || '',
    description: info.description || info.device || '',
    software: isSoftwareAdapter(info) && !takeSoftwareForGpu(),
    maxBufferSize: Number(limits.maxBufferSize),
    maxStorageBufferBindingSize: Number(limits.maxStorageBufferBindingSize),
  };
}

/** One line for BackendInfo.device, e.g. 'GPU via WebGPU: nvidia ampere (NVIDIA GeForce RTX 3060), hardware'. */
export function adapterLine(a: AdapterDescription): string {
  const name = [a.vendor, a.architecture].filter(Boolean).join(' ');
  const detail = a.description && a.description !== name ? ` (${a.description})` : '';
  return `${a.software ? 'software adapter' : 'GPU'} via WebGPU: ${name}${detail}, ${a.software ? 'software' : 'hardware'}`;
}

/** Result of probing for an adapter in a child process. */
export type ProbeResult = { adapter: AdapterDescription } | { adapter: null; reason: string };

type ProbeOutput = {
  info: AdapterInfoLike;
  limits: { maxBufferSize: number; maxStorageBufferBindingSize: number };
} | null;

/** The probe's answer as a ProbeResult. */
function probeResult(found: ProbeOutput): ProbeResult {
  return found
    ? { adapter: describeAdapter(found.info, found.limits) }
    : { adapter: null, reason: 'Dawn found no WebGPU adapter (no GPU driver it accepts)' };
}

/** Module source that asks Dawn (the webgpu package at `entry`) for its adapter and hands `report` what it found. */
function probeSource(entry: string, report: string): string {
  return `
    const { create } = await import(${JSON.stringify(entry)});
    const gpu = create([]);
    const a = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    const out = a ? { info: { vendor: a.info.vendor, architecture: a.info.architecture, device: a.info.device,
      description: a.info.description, isFallbackAdapter: a.info.isFallbackAdapter },
      limits: { maxBufferSize: a.limits.maxBufferSize, maxStorageBufferBindingSize: a.limits.maxStorageBufferBindingSize } } : null;
    ${report}`;
}

/**
 * Asks Dawn for its high-performance adapter away from this thread: in a child process under Node (Dawn prints
 * driver warnings straight to stderr, noise on every machine without a GPU, and a broken driver or dawn.node can
 * crash the process that loads it); in a worker thread under Electron, whose packaged binary cannot run as plain
 * Node (the runAsNode fuse is off: spawning it would start a second app). The probe sees this process's environment
 * (VK_ICD_FILENAMES etc.).
 */
export async function probeAdapter(timeoutMs = 20_000): Promise<ProbeResult> {
  let entry: string;
  try {
    entry = pathToFileURL(require.resolve('webgpu')).href;
  } catch {
    return { adapter: null, reason: 'the webgpu package (Dawn) is not installed' };
  }
  return process.versions.electron ? probeInWorker(entry, timeoutMs) : probeInChild(entry, timeoutMs);
}

function probeInChild(entry: string, timeoutMs: number): Promise<ProbeResult> {
  const script = probeSource(entry, `process.stdout.write('@@probe' + JSON.stringify(out) + '\\n'); process.exit(0);`);
  return new Promise<ProbeResult>((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve({ adapter: null, reason: `could not start the adapter probe: ${error.message}` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = stdout.split('\n').find((l) => l.startsWith('@@probe'));
      if (!line) {
        const why = signal ? `was killed (${signal})` : `exited with code ${code}`;
        const detail = stderr.trim().split('\n').slice(-1)[0];
        resolve({ adapter: null, reason: `the adapter probe ${why}${detail ? `: ${detail}` : ''}` });
        return;
      }
      resolve(probeResult(JSON.parse(line.slice('@@probe'.length)) as ProbeOutput));
    });
  });
}

function probeInWorker(entry: string, timeoutMs: number): Promise<ProbeResult> {
  // An eval'd worker is a CommonJS script: the probe runs inside an async function.
  const script = `const { parentPort } = require('node:worker_threads');
    (async () => { ${probeSource(entry, 'parentPort.postMessage(out);')} })().catch((e) => parentPort.postMessage({ error: String(e) }));`;
  return new Promise<ProbeResult>((resolve) => {
    const worker = new Worker(script, { eval: true });
    const done = (result: ProbeResult) => {
      clearTimeout(timer);
      void worker.terminate();
      resolve(result);
    };
    const timer = setTimeout(() => done({ adapter: null, reason: 'the adapter probe timed out' }), timeoutMs);
    worker.once('message', (message: ProbeOutput | { error: string }) =>
      done(
        message && 'error' in message
          ? { adapter: null, reason: `the adapter probe failed: ${message.error}` }
          : probeResult(message),
      ),
    );
    worker.once('error', (error) => done({ adapter: null, reason: `the adapter probe failed: ${error.message}` }));
  });
}
