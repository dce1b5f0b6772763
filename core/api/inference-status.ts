// Progress of model jobs (predictions, similar tissue, the Poincaré-disk map): what the inference worker reports
// (phase, section, spot counts, work done of the job's work) and what the main thread adds from the clock (the
// job's overall fraction, never going back, and an ETA from the rate of its embedding so far).

import type { InferenceJobKind, InferencePhase, InferenceStatus } from './api.js';

/** One progress report of the worker. Work: an image-encoder spot is 1, a gene-encoder spot GENE_SPOT_WORK. */
export interface WorkerProgress {
  readonly phase: InferencePhase;
  readonly sectionName: string | null;
  readonly done: number;
  readonly total: number;
  readonly section: number;
  readonly sections: number;
  readonly workDone: number;
  readonly work: number;
}

/** What a job in the worker gets besides its sections and params. */
export interface JobContext {
  /** Aborted when the job is cancelled: checked between batches and phases. */
  readonly signal: AbortSignal;
  readonly report: (progress: WorkerProgress) => void;
}

/** The gene encoder (an MLP on the panel counts) costs about 1/30 of the image encoder per spot on wasm. */
export const GENE_SPOT_WORK = 0.05;

/** Share of the bar the embedding fills; the probe, kNN, search or layout after it fill the rest at the end. */
const EMBEDDING_SHARE = 0.95;

const EMBEDDING_PHASES: ReadonlySet<InferencePhase> = new Set(['loading', 'reading', 'embedding', 'genes']);

/** A report of a phase after the embedding (no section, no counts). */
export function finalPhase(phase: InferencePhase): WorkerProgress {
  return { phase, sectionName: null, done: 0, total: 0, section: 0, sections: 0, workDone: 0, work: 0 };
}

interface RunningJob {
  readonly kind: InferenceJobKind;
  readonly startedAt: number;
  progress: WorkerProgress | null;
  fraction: number;
  /** When the embedding started and the work done then, for the rate. */
  rateStart: { readonly at: number; readonly workDone: number } | null;
  /** Seconds left at the time of the last report. */
  eta: { readonly seconds: number; readonly at: number } | null;
}

export class InferenceTracker {
  private job: RunningJob | null = null;
  /** Jobs waiting behind the running one. */
  queued = 0;

  constructor(private readonly now: () => number = Date.now) {}

  begin(kind: InferenceJobKind): void {
    this.job = { kind, startedAt: this.now(), progress: null, fraction: 0, rateStart: null, eta: null };
  }

  end(): void {
    this.job = null;
  }

  report(progress: WorkerProgress): void {
    const job = this.job;
    if (!job) return;
    const at = this.now();
    job.progress = progress;
    const embedding = EMBEDDING_PHASES.has(progress.phase);
    const fraction = embedding ? (progress.work > 0 ? (EMBEDDING_SHARE * progress.workDone) / progress.work : 0) : 1;
    job.fraction = Math.max(job.fraction, Math.min(EMBEDDING_SHARE, fraction));
    if (!embedding) {
      job.eta = null;
      return;
    }
    if (progress.phase === 'embedding' || progress.phase === 'genes')
      job.rateStart ??= { at, workDone: progress.workDone };
    job.eta = this.estimate(job.rateStart, progress, at);
  }

  status(): InferenceStatus {
    const job = this.job;
    const p = job?.progress ?? null;
    const eta = job?.eta ?? null;
    return {
      running: job !== null,
      job: job?.kind ?? null,
      phase: p?.phase ?? null,
      sectionName: p?.sectionName ?? null,
      done: p?.done ?? 0,
      total: p?.total ?? 0,
      section: p?.section ?? 0,
      sections: p?.sections ?? 0,
      fraction: job?.fraction ?? 0,
      etaSeconds: eta ? Math.max(0, eta.seconds - (this.now() - eta.at) / 1000) : null,
      startedAt: job ? new Date(job.startedAt).toISOString() : null,
      queued: this.queued,
    };
  }

  /** Work left over the work rate since the embedding started (reading later sections included); null unknown. */
  private estimate(
    start: RunningJob['rateStart'],
    p: WorkerProgress,
    at: number,
  ): { seconds: number; at: number } | null {
    if (!start || p.workDone <= start.workDone || at <= start.at) return null;
    const rate = (p.workDone - start.workDone) / ((at - start.at) / 1000);
    return { seconds: (p.work - p.workDone) / rate, at };
  }
}
