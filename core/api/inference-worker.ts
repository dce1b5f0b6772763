// The inference worker (started by core/api/inference-client.ts): holds the sections the main thread sent, by
// handle, and the embeddings of them (EmbeddingCache), and runs the model jobs of predictions, similar tissue and
// the Poincaré-disk map, one at a time. A job's error goes back as its message, unchanged. Jobs report progress as
// they go; a 'cancel' message aborts the job's signal, which the job checks between batches (the embedding yields
// to the event loop after each batch, so the message is seen), and the job is answered 'cancelled'.

import { parentPort } from 'node:worker_threads';
import type { Section } from '../section/section.js';
import { fromTransferable } from '../section/transferable.js';
import { EmbeddingCache } from './embedding-cache.js';
import { computeMap } from './hyperbolic-map.js';
import type { FromWorker, InferenceJobs, JobKind, ToWorker } from './inference-client.js';
import type { JobContext } from './inference-status.js';
import { computePrediction } from './predictions.js';
import { computeSimilar } from './similarity.js';

if (!parentPort) throw new Error('inference-worker runs in a worker thread');
const port = parentPort;

type Jobs = {
  [K in JobKind]: (
    sections: Section[],
    params: InferenceJobs[K]['params'],
    cache: EmbeddingCache,
    context: JobContext,
  ) => Promise<InferenceJobs[K]['result']>;
};
const jobs: Jobs = { predict: computePrediction, similar: computeSimilar, map: computeMap };

const sections = new Map<number, Section>();
const cache = new EmbeddingCache();
let queue: Promise<unknown> = Promise.resolve();
/** The cancel switch of each job received and not yet answered. */
const controllers = new Map<number, AbortController>();

function section(handle: number): Section {
  const found = sections.get(handle);
  if (!found) throw new Error(`inference worker: no section with handle ${handle}`);
  return found;
}

/** Takes in a job's new sections and finds its others, at once: a section dropped after this stays the job's. */
function receive(message: Extract<ToWorker, { type: 'run' }>): Section[] {
  for (const { handle, section: sent } of message.define) sections.set(handle, fromTransferable(sent));
  return message.sections.map(section);
}

function run(kind: JobKind, own: Section[], params: unknown, context: JobContext): Promise<unknown> {
  context.signal.throwIfAborted();
  const job = jobs[kind] as (s: Section[], p: unknown, c: EmbeddingCache, x: JobContext) => Promise<unknown>;
  return job(own, params, cache, context);
}

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

function answer(message: FromWorker): void {
  try {
    port.postMessage(message);
  } catch (error) {
    port.postMessage({ type: 'error', id: message.id, message: `inference worker: ${messageOf(error)}` });
  }
}

port.on('message', (message: ToWorker) => {
  if (message.type === 'drop') {
    for (const handle of message.handles) sections.delete(handle);
    return;
  }
  if (message.type === 'cancel') {
    controllers.get(message.id)?.abort();
    return;
  }
  const { id } = message;
  let own: Section[];
  try {
    own = receive(message);
  } catch (error) {
    answer({ type: 'error', id, message: messageOf(error) });
    return;
  }
  const controller = new AbortController();
  controllers.set(id, controller);
  const context: JobContext = {
    signal: controller.signal,
    report: (progress) => port.postMessage({ type: 'progress', id, progress } satisfies FromWorker),
  };
  const job = queue.then(() => run(message.kind, own, message.params, context));
  queue = job
    .then(
      (value) => answer({ type: 'result', id, value }),
      (error: unknown) =>
        answer(
          controller.signal.aborted ? { type: 'cancelled', id } : { type: 'error', id, message: messageOf(error) },
        ),
    )
    .finally(() => controllers.delete(id));
});
