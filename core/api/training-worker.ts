// The training run of the Studio, in a worker thread (so the API and the viewer stay responsive): starts the
// backend, calls train() with an AbortSignal and posts what happens to the TrainingManager (core/api/training.ts).
// Started with { task: 'probe' } it only starts the backend and says which it got.

import { parentPort, workerData } from 'node:worker_threads';
import { initBackend } from '../engine/backend.js';
import { train } from '../engine/trainer.js';
import type { WorkerInput, WorkerMessage } from './training.js';

const port = parentPort;
if (!port) throw new Error('training-worker runs in a worker thread');
const input = workerData as WorkerInput;
const controller = new AbortController();
const post = (message: WorkerMessage) => port.postMessage(message);

port.on('message', (message: unknown) => {
  if (message && typeof message === 'object' && (message as { type?: unknown }).type === 'cancel') controller.abort();
});

async function main(): Promise<void> {
  const info = await initBackend('auto');
  post({ type: 'backend', device: info.device });
  if (input.task === 'probe') return;
  const result = await train(
    { ...input.options, signal: controller.signal },
    {
      onStatus: (message) => post({ type: 'status', message }),
      onStep: (progress) => post({ type: 'step', progress }),
      onEpoch: (metrics) => post({ type: 'epoch', metrics }),
    },
  );
  post({
    type: 'done',
    status: result.status,
    checkpoint: result.checkpoint,
    epochs: result.epochs,
    steps: result.steps,
  });
}

main().then(
  () => post({ type: 'exit' }),
  (error: unknown) => post({ type: 'error', message: error instanceof Error ? error.message : String(error) }),
);
