// The main-thread side of model inference (predictions, similar tissue, the Poincaré-disk map): every embedding,
// probe fit, kNN and projection runs in one long-lived worker thread (core/api/inference-worker.ts), so tiles, API
// calls and the UI's IPC go on while a model runs. The worker is started on the first job and again after it dies.
// Sections travel once per Section object (core/section/transferable.ts) under a numeric handle; the worker keeps
// them, and the embeddings it computes from them, until the section is forgotten (closed or replaced).
// Jobs report their progress as they go (getInferenceStatus); cancel() stops the running one at its next batch and
// drops the ones waiting, each failing with an InferenceCancelled error.

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { packageRoot } from '../resources.js';
import type { Section } from '../section/section.js';
import { toTransferable, type TransferableSection } from '../section/transferable.js';
import type { InferenceStatus } from './api.js';
import { InferenceTracker, type WorkerProgress } from './inference-status.js';
import type { MapParams, MapOutput } from './hyperbolic-map.js';
import type { PredictOutput, PredictParams } from './predictions.js';
import type { SimilarOutput, SimilarParams } from './similarity.js';

/** The jobs the worker runs: what each is sent besides its sections, and what it answers. */
export interface InferenceJobs {
  predict: { params: PredictParams; result: PredictOutput };
  similar: { params: SimilarParams; result: SimilarOutput };
  map: { params: MapParams; result: MapOutput };
}

export type JobKind = keyof InferenceJobs;

export type ToWorker =
  | {
      readonly type: 'run';
      readonly id: number;
      readonly kind: JobKind;
      /** Sections the worker has not seen yet, with the handles later jobs name them by. */
      readonly define: readonly { handle: number; section: TransferableSection }[];
      /** The job's sections, by handle, in the order the job's params refer to them. */
      readonly sections: readonly number[];
      readonly params: unknown;
    }
  | { readonly type: 'drop'; readonly handles: readonly number[] }
  | { readonly type: 'cancel'; readonly id: number };

export type FromWorker =
  | { readonly type: 'result'; readonly id: number; readonly value: unknown }
  | { readonly type: 'error'; readonly id: number; readonly message: string }
  | { readonly type: 'cancelled'; readonly id: number }
  | { readonly type: 'progress'; readonly id: number; readonly progress: WorkerProgress };

/** A job stopped by cancel(): its message ends in ': cancelled', which is how the renderer tells it apart. */
export class InferenceCancelled extends Error {
  constructor(caller: string) {
    super(`${caller}: cancelled`);
    this.name = 'InferenceCancelled';
  }
}

interface Pending {
  readonly caller: string;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
}

/** The worker script: beside this module when built, else the built copy (running from TypeScript in tests). */
function workerScript(): string {
  const beside = join(dirname(fileURLToPath(import.meta.url)), 'inference-worker.js');
  if (existsSync(beside)) return beside;
  const built = join(packageRoot(), 'dist', 'core', 'api', 'inference-worker.js');
  if (existsSync(built)) return built;
  throw new Error(`the inference worker is not built (${built} is missing): run npm run build:node`);
}

export class InferenceClient {
  private worker: Worker | null = null;
  /** Why the current worker failed (its uncaught error), for the message of the job it took down. */
  private failure: string | null = null;
  /** Sections the current worker holds, by the handle it knows them by. */
  private sent = new WeakMap<Section, number>();
  private readonly pending = new Map<number, Pending>();
  private nextHandle = 1;
  private nextId = 1;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly tracker = new InferenceTracker();
  /** Jobs get tickets in call order; cancel() cancels every ticket up to the last one given. */
  private lastTicket = 0;
  private cancelledUpTo = 0;
  private runningTicket: number | null = null;

  /** `onReport` hears the status after each progress report of the worker. */
  constructor(private readonly onReport?: (status: InferenceStatus) => void) {}

  /**
   * Runs `job` (an API call named `caller`, whose model work is a `kind` job) after the jobs before it (a failed job
   * does not block the next): one model job at a time.
   */
  serial<T>(kind: JobKind, caller: string, job: () => Promise<T>): Promise<T> {
    const ticket = ++this.lastTicket;
    this.tracker.queued++;
    const start = async () => {
      this.tracker.queued--;
      if (ticket <= this.cancelledUpTo) throw new InferenceCancelled(caller);
      this.runningTicket = ticket;
      this.tracker.begin(kind);
      try {
        return await job();
      } finally {
        this.runningTicket = null;
        this.tracker.end();
      }
    };
    const run = this.queue.then(start, start);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Where the running job stands. */
  status(): InferenceStatus {
    return this.tracker.status();
  }

  /** Stops the running job at its next batch and drops the waiting ones (their calls fail as cancelled). */
  cancel(): InferenceStatus {
    this.cancelledUpTo = this.lastTicket;
    for (const id of this.pending.keys()) this.worker?.postMessage({ type: 'cancel', id } satisfies ToWorker);
    return this.status();
  }

  /** Whether a job is in the worker now. */
  get busy(): boolean {
    return this.pending.size > 0;
  }

  /**
   * Runs a job in the worker on `sections` (each sent once); its errors come back with the worker's message.
   * `caller` (the API call) prefixes the error when the worker dies during the job.
   */
  run<K extends JobKind>(
    kind: K,
    caller: string,
    sections: readonly Section[],
    params: InferenceJobs[K]['params'],
  ): Promise<InferenceJobs[K]['result']> {
    // Cancelled while its call was still checking the request on this thread.
    if (this.runningTicket !== null && this.runningTicket <= this.cancelledUpTo)
      return Promise.reject(new InferenceCancelled(caller));
    const worker = this.worker ?? this.start();
    const define: { handle: number; section: TransferableSection }[] = [];
    const handles = sections.map((section) => {
      const known = this.sent.get(section);
      if (known !== undefined) return known;
      const handle = this.nextHandle++;
      define.push({ handle, section: toTransferable(section) });
      this.sent.set(section, handle);
      return handle;
    });
    const id = this.nextId++;
    const message: ToWorker = { type: 'run', id, kind, define, sections: handles, params };
    try {
      worker.postMessage(message);
    } catch (error) {
      // Not sent after all (data that cannot be cloned): the next job sends these sections again.
      const fresh = new Set(define.map((d) => d.handle));
      for (const section of sections) if (fresh.has(this.sent.get(section)!)) this.sent.delete(section);
      throw error;
    }
    worker.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { caller, resolve: resolve as (value: unknown) => void, reject });
    });
  }

  /** The worker lets go of a section (closed, or replaced by its tiled version) and its embeddings. */
  forget(section: Section): void {
    const handle = this.sent.get(section);
    if (handle === undefined) return;
    this.sent.delete(section);
    this.worker?.postMessage({ type: 'drop', handles: [handle] } satisfies ToWorker);
  }

  /** Ends the worker (shutdown); a job in it fails, and a later job starts a new one. */
  async terminate(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    const code = await worker.terminate();
    this.ended(worker, code);
  }

  private start(): Worker {
    // workerData must be an object: web-worker (imported by geotiff, which the slide code uses) destructures it in
    // every worker thread and throws on undefined.
    const worker = new Worker(workerScript(), { workerData: { role: 'inference' } });
    this.worker = worker;
    this.failure = null;
    this.sent = new WeakMap();
    // Idle, it must not keep the process alive; `run` refs it while a job is in it.
    worker.unref();
    worker.on('message', (message: FromWorker) => this.answer(worker, message));
    worker.on('error', (error) => (this.failure = error.message));
    worker.on('exit', (code) => this.ended(worker, code));
    return worker;
  }

  private answer(worker: Worker, message: FromWorker): void {
    const job = this.pending.get(message.id);
    if (!job) return;
    if (message.type === 'progress') {
      this.tracker.report(message.progress);
      this.onReport?.(this.tracker.status());
      return;
    }
    this.pending.delete(message.id);
    if (this.pending.size === 0) worker.unref();
    if (message.type === 'result') job.resolve(message.value);
    else if (message.type === 'cancelled') job.reject(new InferenceCancelled(job.caller));
    else job.reject(new Error(message.message));
  }

  /** The worker is gone: its jobs fail saying so, and the next job starts a new worker. */
  private ended(worker: Worker, code: number): void {
    if (this.worker !== worker) return;
    this.worker = null;
    this.sent = new WeakMap();
    const why = this.failure ? `failed: ${this.failure}` : `stopped (exit code ${code})`;
    for (const [id, job] of this.pending) {
      this.pending.delete(id);
      job.reject(new Error(`${job.caller}: the inference worker ${why}; the next call starts a new one`));
    }
  }
}
