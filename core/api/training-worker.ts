// The training run of the Studio, in a worker thread (so the API and the viewer stay responsive): starts the
// backend, calls train() with an AbortSignal and posts what happens to the TrainingManager (core/api/training.ts).
// A completed run with a label column is then evaluated here too (core/eval/model-evaluation.ts), and the result
// written beside the model (EVALUATION_FILE) before 'done' is posted.
// Started with { task: 'probe' } it only starts the backend and says which it got.

import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { writeFileAtomic } from '../atomic-write.js';
import { initBackend } from '../engine/backend.js';
import { loadModel } from '../engine/checkpoint.js';
import { train } from '../engine/trainer.js';
import { evaluateOnTrainingSections } from '../eval/model-evaluation.js';
import { openSections } from '../readers/open.js';
import type { Section } from '../section/section.js';
import type { ModelEvaluation } from './api.js';
import { EVALUATION_FILE, type EvaluationInput, type WorkerInput, type WorkerMessage } from './training.js';

const port = parentPort;
if (!port) throw new Error('training-worker runs in a worker thread');
const input = workerData as WorkerInput;
const controller = new AbortController();
const post = (message: WorkerMessage) => port.postMessage(message);

port.on('message', (message: unknown) => {
  if (message && typeof message === 'object' && (message as { type?: unknown }).type === 'cancel') controller.abort();
});

/** The run's sections as the trainer read them, with the label column the Studio sent (annotations) put in. */
async function sectionsWithLabels(sources: readonly string[], evaluation: EvaluationInput): Promise<Section[]> {
  const sections: Section[] = [];
  for (const source of sources) {
    const { sections: found } = await openSections(source);
    for (const section of found) {
      const given = evaluation.labels.find((l) => l.source === section.source && l.name === section.name);
      if (given && given.values.length !== section.spots.ids.length) {
        throw new Error(`${section.name}: ${given.values.length} labels for ${section.spots.ids.length} spots`);
      }
      const labels = new Map(section.labels);
      if (given) labels.set(evaluation.labelColumn, given.values);
      sections.push({ ...section, labels });
    }
  }
  return sections;
}

/** Held-out metrics of the finished model; a failure is recorded, not thrown (the model itself is fine). */
async function evaluate(
  out: string,
  sources: readonly string[],
  evaluation: EvaluationInput,
): Promise<ModelEvaluation> {
  const started = performance.now();
  const finish = (metrics: Partial<ModelEvaluation>, error: string | null): ModelEvaluation => ({
    labelColumn: evaluation.labelColumn,
    protocol: 'spatial-blocks',
    folds: 0,
    testSpots: 0,
    accuracy: null,
    balancedAccuracy: null,
    macroF1: null,
    knnMeanR: null,
    genes: 0,
    ...metrics,
    seconds: (performance.now() - started) / 1000,
    evaluatedAt: new Date().toISOString(),
    error,
  });
  post({ type: 'status', message: 'evaluating: reading the sections' });
  try {
    const sections = await sectionsWithLabels(sources, evaluation);
    const { model, checkpoint } = await loadModel(out);
    try {
      const panel = checkpoint.manifest.genePanel;
      if (!panel) throw new Error('the model has no gene panel');
      const metrics = await evaluateOnTrainingSections(model, panel, sections, evaluation.labelColumn, {
        onStatus: (message) => post({ type: 'status', message }),
      });
      return finish(metrics, null);
    } finally {
      model.dispose();
    }
  } catch (error) {
    return finish({}, error instanceof Error ? error.message : String(error));
  }
}

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
  if (result.status === 'completed' && result.checkpoint !== null && input.evaluation) {
    const evaluation = await evaluate(input.options.out, input.options.sections, input.evaluation);
    await writeFileAtomic(join(input.options.out, EVALUATION_FILE), JSON.stringify(evaluation, null, 1));
  }
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
