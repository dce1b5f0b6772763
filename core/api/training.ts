// Training in the Studio: one run at a time in a worker thread (core/api/training-worker.ts), its progress kept
// here for getTrainingStatus to answer, and the model library: the bundled base model (read-only) and the model
// folders under `<projectDir>/models/`, each with a `studio.json` beside the checkpoints for its name.

import { existsSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { writeFileAtomic } from '../atomic-write.js';
import {
  exportModel as exportCheckpoint,
  hasCheckpoint,
  loadCheckpoint,
  removeStaleSaves,
} from '../engine/checkpoint.js';
import type { CheckpointManifest } from '../engine/checkpoint.js';
import { processAlive } from '../process-alive.js';
import type { EpochMetrics, StepProgress, TrainOptions } from '../engine/trainer.js';
import { baseModelPath, packageRoot } from '../resources.js';
import { hasLabels, type LabelColumn } from '../section/section.js';
import type {
  ModelEvaluation,
  ModelInfo,
  TrainingEpoch,
  TrainingLosses,
  TrainingPreset,
  TrainingRequest,
  TrainingState,
  TrainingStatus,
  TrainingStep,
} from './api.js';

/** Serialisable options of a run (sections as source paths). */
export type WorkerTrainOptions = Omit<TrainOptions, 'sections' | 'signal' | 'faults'> & { sections: string[] };

/** What the worker evaluates a completed run on: a label column, with its values where the Studio has them. */
export interface EvaluationInput {
  readonly labelColumn: string;
  /** Per section (matched by source and name): the column in spot order, e.g. the project's annotations. */
  readonly labels: readonly { source: string; name: string; values: (string | null)[] }[];
}

export type WorkerInput =
  { task: 'probe' } | { task: 'train'; options: WorkerTrainOptions; evaluation?: EvaluationInput };

/** The evaluation of a model's last run, beside its checkpoints. */
export const EVALUATION_FILE = 'evaluation.json';

export type WorkerMessage =
  | { type: 'backend'; device: string }
  | { type: 'status'; message: string }
  | { type: 'step'; progress: StepProgress }
  | { type: 'epoch'; metrics: EpochMetrics }
  | { type: 'done'; status: 'completed' | 'aborted'; checkpoint: string | null; epochs: number; steps: number }
  | { type: 'error'; message: string }
  | { type: 'exit' };

/** A section the manager may train on, as the Studio knows it. */
export interface TrainableSection {
  readonly name: string;
  readonly source: string;
  readonly spots: number;
  readonly hasImage: boolean;
  /** Its label columns (the section's, and its annotations where there is a project). */
  readonly labels: ReadonlyMap<string, LabelColumn>;
}

export const BASE_MODEL_ID = 'base';
const SIDECAR = 'studio.json';
const MAX_STEP_POINTS = 1000;
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const PRESET_EPOCHS: Record<TrainingPreset, number> = { quick: 10, full: 3, custom: 10 };

interface Sidecar {
  name?: string;
  preset?: string;
  createdAt?: string;
  /** The label column the run is evaluated on. */
  labelColumn?: string;
  /** The process that started the run: a folder without a checkpoint whose process is gone was killed early. */
  pid?: number;
}

/** The worker script: beside this module when built, else the built copy (running from TypeScript in tests). */
function workerScript(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const beside = join(here, 'training-worker.js');
  if (existsSync(beside)) return beside;
  const built = join(packageRoot(), 'dist', 'core', 'api', 'training-worker.js');
  if (existsSync(built)) return built;
  throw new Error(`the training worker is not built (${built} is missing): run npm run build:node`);
}

function finiteOrNull(v: number | null | undefined): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function positiveInt(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new Error(`${what} must be a whole number >= 1, not ${JSON.stringify(value)}`);
  }
  return value;
}

function nonNegative(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new Error(`${what} must be a number >= 0, not ${JSON.stringify(value)}`);
  }
  return value;
}

/** `20260131-142501` in local time. */
function stamp(date: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return (
    `${date.getFullYear()}${p(date.getMonth() + 1)}${p(date.getDate())}-` +
    `${p(date.getHours())}${p(date.getMinutes())}${p(date.getSeconds())}`
  );
}

function slug(name: string): string {
  const s = name
    .normalize('NFKD')
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[-.]+|-+$/g, '')
    .slice(0, 48);
  return s || 'model';
}

function cleanName(name: unknown): string {
  if (typeof name !== 'string' || name.trim() === '') throw new Error('a model name must not be empty');
  const trimmed = name.trim();
  if (trimmed.length > 200) throw new Error('a model name must be at most 200 characters');
  return trimmed;
}

function readManifest(dir: string): CheckpointManifest {
  const pointer = join(dir, 'latest.json');
  let folder = dir;
  if (existsSync(pointer)) {
    const parsed = JSON.parse(readFileSync(pointer, 'utf8')) as { checkpoint?: unknown };
    if (typeof parsed.checkpoint !== 'string' || !/^ckpt-\d+$/.test(parsed.checkpoint)) {
      throw new Error(`${pointer}: does not name a checkpoint`);
    }
    folder = join(dir, parsed.checkpoint);
  }
  return JSON.parse(readFileSync(join(folder, 'manifest.json'), 'utf8')) as CheckpointManifest;
}

function readEvaluation(dir: string): ModelEvaluation | null {
  try {
    const parsed = JSON.parse(readFileSync(join(dir, EVALUATION_FILE), 'utf8')) as ModelEvaluation;
    return typeof parsed?.labelColumn === 'string' ? parsed : null;
  } catch {
    return null;
  }
}

/** The evaluation input of a run: the column's values of each section that has it. */
function evaluationInput(sections: readonly TrainableSection[], column: unknown): EvaluationInput | undefined {
  if (column === undefined || column === null || column === '') return undefined;
  if (typeof column !== 'string') throw new Error('labelColumn must be a string');
  const labels = sections.flatMap((s) => {
    const values = s.labels.get(column);
    return values && hasLabels(values) ? [{ source: s.source, name: s.name, values: [...values] }] : [];
  });
  if (labels.length === 0) {
    throw new Error(
      `label column '${column.slice(0, 64)}' has no labels in ${sections.map((s) => s.name).join(', ')}: ` +
        'choose another column for the evaluation, or none',
    );
  }
  return { labelColumn: column, labels };
}

function readSidecar(dir: string): Sidecar {
  try {
    return JSON.parse(readFileSync(join(dir, SIDECAR), 'utf8')) as Sidecar;
  } catch {
    return {};
  }
}

function lossesOf(m: {
  loss: number;
  contrastive: number;
  crossEntailment: number;
  intraEntailment: number;
  curvature: number | null;
}): TrainingLosses {
  return {
    loss: m.loss,
    contrastive: m.contrastive,
    crossEntailment: m.crossEntailment,
    intraEntailment: m.intraEntailment,
    curvature: m.curvature,
  };
}

function epochOf(m: EpochMetrics): TrainingEpoch {
  return { ...lossesOf(m), epoch: m.epoch, spotsPerSecond: m.spotsPerSecond, seconds: m.seconds };
}

type MutableStatus = { -readonly [K in keyof TrainingStatus]: TrainingStatus[K] };

/** The status before any run (and after a reset), on `backend`. */
export function idleStatus(backend: string | null): MutableStatus {
  return {
    state: 'idle',
    backend,
    modelId: null,
    modelName: null,
    preset: null,
    message: null,
    epoch: 0,
    epochs: 0,
    step: 0,
    stepsPerEpoch: 0,
    globalStep: 0,
    totalSteps: 0,
    history: [],
    steps: [],
    last: null,
    spotsPerSecond: null,
    etaSeconds: null,
    startedAt: null,
    finishedAt: null,
    error: null,
  };
}

export interface TrainingManagerOptions {
  /** Models go to `<projectDir>/models/`; null: training and the project's library are unavailable. */
  readonly projectDir: string | null;
  /** The open sections by id (throws for an unknown id). */
  readonly section: (id: string) => TrainableSection;
  /** The bundled base model (default resources/models/delst-base). */
  readonly baseModel?: string;
}

export class TrainingManager {
  private status: MutableStatus = idleStatus(null);
  private worker: Worker | null = null;
  private stepPoints: TrainingStep[] = [];
  private stride = 1;
  private probe: Worker | null = null;
  private probed = false;
  /** Resolves when the current run's worker has ended (tests, shutdown). */
  private finished: Promise<void> = Promise.resolve();
  /** Start-up removal of what killed runs left (listModels waits for it). */
  private readonly tidied: Promise<void>;
  readonly modelsDir: string | null;
  private readonly baseModel: string;

  constructor(private readonly options: TrainingManagerOptions) {
    this.modelsDir = options.projectDir ? join(resolve(options.projectDir), 'models') : null;
    this.baseModel = options.baseModel ?? baseModelPath();
    this.tidied = this.modelsDir ? removeAbandonedRuns(this.modelsDir).catch(() => undefined) : Promise.resolve();
  }

  get running(): boolean {
    return this.worker !== null;
  }

  /** Resolves once no run is going on. */
  async whenIdle(): Promise<void> {
    await this.finished;
  }

  getStatus(): TrainingStatus {
    if (!this.probed && !this.worker) this.startProbe();
    return { ...this.status, history: [...this.status.history], steps: [...this.stepPoints] };
  }

  /** Starts the backend once in a worker, only to say which one this machine gets. */
  private startProbe(): void {
    this.probed = true;
    let worker: Worker;
    try {
      worker = new Worker(workerScript(), { workerData: { task: 'probe' } satisfies WorkerInput });
    } catch {
      return;
    }
    this.probe = worker;
    worker.unref();
    const end = () => {
      if (this.probe === worker) this.probe = null;
      void worker.terminate();
    };
    worker.on('message', (message: WorkerMessage) => {
      if (message.type === 'backend') this.status.backend ??= message.device;
      if (message.type !== 'backend') end();
    });
    worker.on('error', end);
  }

  async start(request: TrainingRequest): Promise<TrainingStatus> {
    const modelsDir = this.requireProject();
    this.requireIdle();
    if (!request || typeof request !== 'object') throw new Error('startTraining: give a training request');
    const preset = request.preset;
    if (preset !== 'quick' && preset !== 'full' && preset !== 'custom') {
      throw new Error(`preset must be quick, full or custom, not ${JSON.stringify(preset)}`);
    }
    const ids = request.sectionIds;
    if (!Array.isArray(ids) || ids.length === 0) throw new Error('choose at least one section to train on');
    const sections = [...new Set(ids)].map((id) => this.options.section(id));
    for (const s of sections) {
      if (!s.hasImage) throw new Error(`${s.name} has no H&E image: training needs one`);
      if (s.spots < 2) throw new Error(`${s.name} has no spots with counts to train on`);
    }
    const evaluation = evaluationInput(sections, request.labelColumn);
    const epochs = request.epochs == null ? PRESET_EPOCHS[preset] : positiveInt(request.epochs, 'epochs');
    const options: { -readonly [K in keyof WorkerTrainOptions]: WorkerTrainOptions[K] } = {
      sections: [...new Set(sections.map((s) => s.source))],
      out: '',
      epochs,
      init: this.baseModel,
      freeze: preset === 'quick' || (preset === 'custom' && request.freezeBackbone === true) ? 'backbone' : 'none',
    };
    if (request.batchSize != null) options.batchSize = positiveInt(request.batchSize, 'batch size');
    if (preset === 'custom') {
      if (request.mode != null) {
        if (!['clip', 'meru', 'delst'].includes(request.mode)) {
          throw new Error(`mode must be clip, meru or delst, not ${JSON.stringify(request.mode)}`);
        }
        options.mode = request.mode;
      }
      const loss: { lambda?: number; beta?: number } = {};
      if (request.lambda != null) loss.lambda = nonNegative(request.lambda, 'λ');
      if (request.beta != null) loss.beta = nonNegative(request.beta, 'β');
      if (Object.keys(loss).length > 0) options.loss = loss;
    }
    const name =
      request.name != null && String(request.name).trim() !== ''
        ? cleanName(request.name)
        : `${sections.map((s) => s.name).join(' + ')} (${preset})`;
    const now = new Date();
    let id = `${slug(name)}-${stamp(now)}`;
    for (let n = 2; existsSync(join(modelsDir, id)); n++) id = `${slug(name)}-${stamp(now)}-${n}`;
    const out = join(modelsDir, id);
    await fs.mkdir(out, { recursive: true });
    await writeFileAtomic(
      join(out, SIDECAR),
      JSON.stringify(
        {
          name,
          preset,
          createdAt: now.toISOString(),
          labelColumn: evaluation?.labelColumn,
          pid: process.pid,
        } satisfies Sidecar,
        null,
        1,
      ),
    );
    options.out = out;
    this.launch(options, { id, name, preset, history: [] }, evaluation);
    return this.getStatus();
  }

  async resume(modelId: string, epochs?: number | null): Promise<TrainingStatus> {
    this.requireProject();
    this.requireIdle();
    const dir = this.modelDir(modelId, { writable: true });
    const manifest = readManifest(dir);
    const sources = (manifest.data?.sections ?? []).map((s) => s.source);
    if (sources.length === 0) throw new Error(`${modelId}: the model does not record the sections it was trained on`);
    const missing = sources.filter((s) => !existsSync(s));
    if (missing.length > 0) throw new Error(`cannot resume: ${missing.join(', ')} not found`);
    const sidecar = readSidecar(dir);
    const history = manifest.metrics
      .map((m) => m as unknown as EpochMetrics)
      .filter((m) => typeof m.epoch === 'number')
      .map(epochOf);
    const options: WorkerTrainOptions = {
      sections: sources,
      out: dir,
      resume: true,
      ...(epochs == null ? {} : { epochs: positiveInt(epochs, 'epochs') }),
    };
    const preset = (['quick', 'full', 'custom'] as const).find((p) => p === sidecar.preset) ?? 'custom';
    // Evaluated again on the sections' own label column (annotations of sections not open now are not at hand).
    const evaluation = sidecar.labelColumn ? { labelColumn: sidecar.labelColumn, labels: [] } : undefined;
    this.launch(options, { id: modelId, name: sidecar.name ?? modelId, preset, history }, evaluation);
    return this.getStatus();
  }

  cancel(): TrainingStatus {
    if (!this.worker) throw new Error('no training run is going on');
    this.status.message = 'stopping after this step and saving a checkpoint';
    this.worker.postMessage({ type: 'cancel' });
    return this.getStatus();
  }

  private launch(
    options: WorkerTrainOptions,
    run: { id: string; name: string; preset: TrainingPreset; history: TrainingEpoch[] },
    evaluation: EvaluationInput | undefined,
  ): void {
    const backend = this.status.backend;
    this.status = {
      ...idleStatus(backend),
      state: 'running',
      modelId: run.id,
      modelName: run.name,
      preset: run.preset,
      message: 'starting',
      history: run.history,
      epochs: options.epochs ?? 0,
      startedAt: new Date().toISOString(),
    };
    this.stepPoints = [];
    this.stride = 1;
    if (this.probe) {
      void this.probe.terminate();
      this.probe = null;
    }
    this.probed = true;
    const worker = new Worker(workerScript(), {
      workerData: { task: 'train', options, evaluation } satisfies WorkerInput,
    });
    this.worker = worker;
    let settled = false;
    let resolveFinished: () => void = () => {};
    this.finished = new Promise((r) => (resolveFinished = r));
    const finish = (state: TrainingState, error: string | null, keepFolder: boolean) => {
      if (settled) return;
      settled = true;
      this.status.state = state;
      this.status.error = error;
      this.status.finishedAt = new Date().toISOString();
      this.status.message = null;
      if (state !== 'running') this.status.etaSeconds = state === 'done' ? 0 : null;
      this.worker = null;
      const cleanup = keepFolder || hasCheckpoint(options.out) ? Promise.resolve() : removeFolder(options.out);
      void Promise.all([worker.terminate().catch(() => 0), cleanup]).then(() => resolveFinished());
    };
    worker.on('message', (message: WorkerMessage) => {
      const s = this.status;
      switch (message.type) {
        case 'backend':
          s.backend = message.device;
          break;
        case 'status':
          s.message = message.message;
          break;
        case 'step': {
          const p = message.progress;
          s.message = null;
          s.epoch = p.epoch;
          s.epochs = p.epochs;
          s.step = p.step;
          s.stepsPerEpoch = p.stepsPerEpoch;
          s.globalStep = p.globalStep;
          s.totalSteps = p.totalSteps;
          s.last = lossesOf(p);
          s.spotsPerSecond = finiteOrNull(p.spotsPerSecond);
          s.etaSeconds = finiteOrNull(p.etaSeconds);
          this.addStep({ ...lossesOf(p), globalStep: p.globalStep });
          break;
        }
        case 'epoch':
          s.history = [...s.history.filter((e) => e.epoch !== message.metrics.epoch), epochOf(message.metrics)];
          break;
        case 'done':
          finish(message.status === 'completed' ? 'done' : 'cancelled', null, message.checkpoint !== null);
          break;
        case 'error':
          finish('failed', message.message, false);
          break;
        case 'exit':
          break;
      }
    });
    worker.on('error', (error) => finish('failed', error.message, false));
    worker.on('exit', (code) => finish('failed', `the training worker stopped (exit code ${code})`, false));
  }

  /** Keeps the per-step curve under MAX_STEP_POINTS by keeping every `stride`-th step, doubling as needed. */
  private addStep(point: TrainingStep): void {
    if (point.globalStep % this.stride !== 0 && this.stepPoints.length > 0) return;
    this.stepPoints.push(point);
    if (this.stepPoints.length > MAX_STEP_POINTS) {
      this.stride *= 2;
      this.stepPoints = this.stepPoints.filter((p) => p.globalStep % this.stride === 0);
    }
  }

  /** Ends a run at once (shutdown): the worker is terminated without a final checkpoint. */
  async terminate(): Promise<void> {
    const workers = [this.worker, this.probe].filter((w): w is Worker => w !== null);
    this.probe = null;
    await Promise.all(workers.map((w) => w.terminate().catch(() => 0)));
    await this.finished;
  }

  // ---- the library ------------------------------------------------------------------------------------------

  async listModels(): Promise<ModelInfo[]> {
    await this.tidied;
    const models: ModelInfo[] = [];
    if (hasCheckpoint(this.baseModel)) {
      const info = this.describe(BASE_MODEL_ID, this.baseModel, true);
      if (info) models.push(info);
    }
    if (this.modelsDir && existsSync(this.modelsDir)) {
      const names = (await fs.readdir(this.modelsDir, { withFileTypes: true }))
        .filter((e) => e.isDirectory() && ID_PATTERN.test(e.name))
        .map((e) => e.name);
      const own = names
        .map((name) => this.describe(name, join(this.modelsDir!, name), false))
        .filter((m): m is ModelInfo => m !== null)
        .sort((a, b) => b.date.localeCompare(a.date) || a.id.localeCompare(b.id));
      models.push(...own);
    }
    return models;
  }

  private describe(id: string, dir: string, readOnly: boolean): ModelInfo | null {
    if (!hasCheckpoint(dir)) return null;
    let manifest: CheckpointManifest;
    try {
      manifest = readManifest(dir);
    } catch {
      return null;
    }
    const sidecar = readSidecar(dir);
    const sections = manifest.data?.sections ?? [];
    const last = manifest.metrics.at(-1) as { loss?: unknown } | undefined;
    const planned = (manifest.training as { epochs?: unknown } | null)?.epochs;
    return {
      id,
      name: sidecar.name ?? (readOnly ? 'DELST base model' : id),
      mode: manifest.config.mode,
      data: sections.map((s) => s.name),
      spots: sections.reduce((n, s) => n + s.spots, 0),
      epochs: manifest.epoch,
      plannedEpochs: typeof planned === 'number' ? planned : null,
      finalLoss: typeof last?.loss === 'number' && Number.isFinite(last.loss) ? last.loss : null,
      date: manifest.createdAt,
      path: dir,
      readOnly,
      training: this.worker !== null && this.status.modelId === id && !readOnly,
      evaluation: readEvaluation(dir),
    };
  }

  async renameModel(modelId: string, name: string): Promise<ModelInfo[]> {
    const dir = this.modelDir(modelId, { writable: true });
    const sidecar = readSidecar(dir);
    await writeFileAtomic(join(dir, SIDECAR), JSON.stringify({ ...sidecar, name: cleanName(name) }, null, 1));
    if (this.status.modelId === modelId) this.status.modelName = cleanName(name);
    return this.listModels();
  }

  async deleteModel(modelId: string): Promise<ModelInfo[]> {
    const dir = this.modelDir(modelId, { writable: true });
    if (this.worker && this.status.modelId === modelId) throw new Error('this model is training: cancel the run first');
    await removeFolder(dir);
    return this.listModels();
  }

  async exportModel(modelId: string, to: string): Promise<{ path: string }> {
    const dir = this.modelDir(modelId, { writable: false });
    if (typeof to !== 'string' || !isAbsolute(to))
      throw new Error('export: give an absolute path for the model folder');
    const target = resolve(to);
    if (existsSync(target)) throw new Error(`export: ${target} exists already; choose a new folder name`);
    await exportCheckpoint(dir, target);
    const sidecar = readSidecar(dir);
    const name = sidecar.name ?? (modelId === BASE_MODEL_ID ? 'DELST base model' : modelId);
    await writeFileAtomic(join(target, SIDECAR), JSON.stringify({ ...sidecar, name }, null, 1));
    return { path: target };
  }

  async importModel(from: string): Promise<ModelInfo> {
    const modelsDir = this.requireProject();
    if (typeof from !== 'string' || from.trim() === '') throw new Error('import: give the path of a model folder');
    const source = resolve(from);
    if (!hasCheckpoint(source)) throw new Error(`import: ${source} is not a DELST model folder`);
    await loadCheckpoint(source); // checks the format and the checksums before anything is copied
    const sidecar = readSidecar(source);
    const name = sidecar.name ?? basename(source);
    const now = new Date();
    let id = `${slug(name)}-${stamp(now)}`;
    for (let n = 2; existsSync(join(modelsDir, id)); n++) id = `${slug(name)}-${stamp(now)}-${n}`;
    const target = join(modelsDir, id);
    const temp = join(modelsDir, `.import-${id}`);
    await fs.mkdir(modelsDir, { recursive: true });
    try {
      await fs.cp(source, temp, { recursive: true, filter: (src) => !basename(src).startsWith('.tmp-') });
      await writeFileAtomic(
        join(temp, SIDECAR),
        JSON.stringify({ ...sidecar, name, createdAt: sidecar.createdAt ?? now.toISOString() }, null, 1),
      );
      await fs.rename(temp, target);
    } catch (error) {
      await removeFolder(temp);
      throw error;
    }
    const info = this.describe(id, target, false);
    if (!info) throw new Error(`import: ${target} could not be read back`);
    return info;
  }

  private modelDir(modelId: string, { writable }: { writable: boolean }): string {
    if (modelId === BASE_MODEL_ID) {
      if (writable) throw new Error('the base model is read-only');
      return this.baseModel;
    }
    if (typeof modelId !== 'string' || !ID_PATTERN.test(modelId) || !this.modelsDir) {
      throw new Error(`no model with id ${String(modelId).slice(0, 64)}`);
    }
    const dir = join(this.modelsDir, modelId);
    if (!hasCheckpoint(dir)) throw new Error(`no model with id ${modelId}`);
    return dir;
  }

  private requireProject(): string {
    if (!this.modelsDir) throw new Error('training needs a project folder (models are kept in it), and none was given');
    return this.modelsDir;
  }

  private requireIdle(): void {
    if (this.worker) {
      throw new Error(`a training run is going on (${this.status.modelName ?? 'a model'}): cancel it or wait for it`);
    }
  }
}

/**
 * What runs killed mid-way (crash, kill -9, power cut) left in the library: folders of runs that never saved a
 * checkpoint (never listed, so never deletable by the user) and the temp files of interrupted saves.
 */
async function removeAbandonedRuns(modelsDir: string): Promise<void> {
  for (const entry of await fs.readdir(modelsDir, { withFileTypes: true }).catch(() => [])) {
    if (!entry.isDirectory() || !ID_PATTERN.test(entry.name)) continue;
    const dir = join(modelsDir, entry.name);
    const pid = readSidecar(dir).pid;
    if (hasCheckpoint(dir)) await removeStaleSaves(dir);
    else if (typeof pid === 'number' && !processAlive(pid)) await removeFolder(dir);
  }
}

async function removeFolder(dir: string): Promise<void> {
  await fs.rm(dir, { recursive: true, force: true });
}
