// What bench/device/gpu-check.sh runs on a lent GPU machine, bundled into one file by bench/device/pack.sh (the
// machine has no Node packages and no network). Each subcommand prints one JSON object:
//   adapters        what Dawn offers and what `--backend auto` picks there (it must take a hardware adapter)
//   train ARGS...   `npm run bench -- train ARGS...` (the engine's fixed configuration); `--submit-batch N` first
//                   sets how many dispatches tfjs-webgpu records before each queue submit (its default: 15)
//   oom             fills GPU memory between training steps: the fault watcher must report 'out-of-memory', and a
//                   new process (as `delst train --resume` would be) must train again once the memory is freed

import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../core/engine/backend.js';
import { DEFAULT_MODEL_CONFIG } from '../../core/engine/config.js';
import { DelstModel } from '../../core/engine/models/delst-model.js';
import { AdamW } from '../../core/engine/optimizer.js';
import { trainStepAsync } from '../../core/engine/trainer.js';
import { probeAdapter } from '../../core/engine/webgpu/adapter.js';
import { webgpuDevice, webgpuFault } from '../../core/engine/webgpu/start.js';
import { benchBatch, benchLoss, benchTrain } from '../train.js';

async function adapters(): Promise<object> {
  const probe = await probeAdapter();
  const auto = await initBackend('auto');
  return { probe, auto: { name: auto.name, device: auto.device, adapter: auto.adapter ?? null } };
}

/** One training step of the fixed configuration at batch 16 on the bench's data; its loss, or the error it threw. */
async function oneStep(seed: number): Promise<{ loss?: number; error?: string }> {
  const model = new DelstModel(DEFAULT_MODEL_CONFIG, seed);
  const optimizer = new AdamW(model.store.trainableEntries(), { weightDecay: 0.2 });
  const batch = benchBatch(DEFAULT_MODEL_CONFIG, 16);
  try {
    const settings = { lr: 1e-4, dropoutSeed: seed, pairSeed: seed };
    return { loss: (await trainStepAsync({ model, optimizer, loss: benchLoss() }, batch, settings)).loss };
  } catch (error) {
    return { error: (error as Error).message };
  } finally {
    tf.dispose([batch.patches, batch.expression]);
    optimizer.dispose();
    model.dispose();
  }
}

/**
 * Out-of-memory on the real device: after a good step, allocate the adapter's largest buffers (at most 256 GiB in
 * all) until Dawn reports an error, try a step, free them, and train for a few steps in a new process.
 */
async function oom(): Promise<object> {
  const info = await initBackend('webgpu');
  const before = await oneStep(1);
  const device = webgpuDevice()!;
  const size = Math.min(info.adapter!.maxBufferSize, 4 * 2 ** 30);
  const hogs: GPUBuffer[] = [];
  let allocatedGiB = 0;
  while (!webgpuFault() && allocatedGiB < 256) {
    const buffer = device.createBuffer({ size, usage: GPUBufferUsage.STORAGE });
    hogs.push(buffer);
    allocatedGiB += size / 2 ** 30;
    // Writing a byte makes the driver back the buffer; the queue's completion delivers any error event.
    device.queue.writeBuffer(buffer, size - 4, new Uint32Array([1]));
    await device.queue.onSubmittedWorkDone();
  }
  const fault = webgpuFault();
  const during = await oneStep(2);
  for (const buffer of hogs) buffer.destroy();
  const again = ['train', '--backend', 'webgpu', '--batch', '16', '--steps', '5', '--warmup', '1'];
  const child = spawnSync(process.execPath, [process.argv[1], ...again], { encoding: 'utf8', timeout: 300_000 });
  const afterInNewProcess =
    child.status === 0
      ? (JSON.parse(child.stdout) as object)
      : { exit: child.status, stderr: child.stderr.slice(-2000) };
  return { adapter: info.device, before, allocatedGiB, fault, during, afterInNewProcess };
}

/** The train bench, after setting tfjs-webgpu's submit batch where `--submit-batch N` asks for it. */
async function train(args: string[]): Promise<object> {
  const at = args.indexOf('--submit-batch');
  if (at < 0) return benchTrain(args);
  const size = Number(args[at + 1]);
  if (!Number.isInteger(size) || size < 1) throw new Error('--submit-batch needs a whole number >= 1');
  await initBackend('webgpu'); // the flag exists once the webgpu backend is loaded
  tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', size);
  const result = await benchTrain([...args.slice(0, at), ...args.slice(at + 2)]);
  return { ...result, submitBatch: size };
}

const [command, ...args] = process.argv.slice(2);
const commands: Record<string, () => Promise<object>> = { adapters, oom, train: () => train(args) };
const run = command ? commands[command] : undefined;
if (!run) {
  console.error(`usage: gpu-check <${Object.keys(commands).join('|')}> [options]`);
  process.exitCode = 2;
} else {
  console.log(JSON.stringify(await run(), null, 2));
}
