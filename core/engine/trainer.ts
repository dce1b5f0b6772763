// The DELST trainer (docs/delst-method.md §3, §4.8, §4.9): AdamW with warm-up + cosine, seeded batches,
// augmentations and dropout, a checkpoint after every epoch, resume, abort and a NaN/Inf guard.
//
// One step:  clamp (after the previous step) -> embed in training mode (augmented patches, dropout) ->
//            computeLoss inside tf.variableGrads over the trainable params -> check loss and gradient are finite ->
//            AdamW -> clampParameters -> dispose everything (the tensor count stays constant).
//
// Determinism: every random draw comes from (seed, epoch, step): the epoch's batch order, each batch's
// augmentation, the dropout masks and the random intra-entailment partners. A run resumed at (epoch, step) from a
// checkpoint (weights, BatchNorm statistics, AdamW moments and step count) therefore takes exactly the steps of
// the uninterrupted run, on the same backend. Epoch boundaries and mid-epoch stops (abort) both save a checkpoint;
// a mid-epoch one records its position and the partial epoch sums so that the epoch's metrics come out the same.
//
// Fine-tuning: `init` starts from another model's weights and gene panel; `freeze: 'backbone'` trains the head only
// (projections, alpha, curvature, logit scale) on backbone features computed once, with the encoders in inference
// mode (no augmentation, no dropout): an epoch is then a few matrix products.

import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { openSections } from '../readers/open.js';
import type { Section } from '../section/section.js';
import { backendFault, initBackend, type BackendChoice } from './backend.js';
import {
  hasCheckpoint,
  loadCheckpoint,
  restoreParams,
  saveCheckpoint,
  type CheckpointManifest,
  type LoadedCheckpoint,
} from './checkpoint.js';
import {
  EMBEDDING_MODES,
  resolveModelConfig,
  validateModelConfig,
  withPanelSize,
  type EmbeddingMode,
  type ModelConfig,
  type ModelConfigInput,
} from './config.js';
import {
  buildDataset,
  DEFAULT_AUGMENT,
  epochBatches,
  makeBatch,
  type AugmentOptions,
  type SpotDataset,
} from './dataset.js';
import { backboneFeatures } from './embed.js';
import { panelCoverage, selectGenePanel, type GenePanel } from './gene-panel.js';
import { distanceToOrigin, safeNorm } from './lorentz.js';
import { computeLoss, expressionSimilarity, makeLossConfig, quantileEdges, type LossConfig } from './losses.js';
import { DelstModel, type Embeddings } from './models/delst-model.js';
import { AdamW, DEFAULT_ADAMW, learningRate } from './optimizer.js';
import { deriveSeed, Rng } from './random.js';
import type { AdapterDescription } from './webgpu/adapter.js';
import { maxBatchForAdapter } from './webgpu/memory.js';

export type FreezeMode = 'none' | 'backbone';
export type LossOverrides = Partial<Omit<LossConfig, 'mode'>>;

export interface TrainOptions {
  /** Section paths (anything openSections reads) or sections already read. */
  readonly sections: readonly (string | Section)[];
  /** Default 'delst' (resume: the run's). */
  readonly mode?: EmbeddingMode;
  /** Loss settings over DEFAULT_LOSS_CONFIG: lambda, beta, crossDirection, intraPairing, intraModalities, ... */
  readonly loss?: LossOverrides;
  /** Epochs in all (required unless resuming; resuming may raise it to train longer). */
  readonly epochs?: number;
  /** Default 64. */
  readonly batchSize?: number;
  /** Peak learning rate, default 1e-4 (§4.8 for a small ST dataset). */
  readonly lr?: number;
  /** Decoupled weight decay, default 0.2. */
  readonly weightDecay?: number;
  /** Share of the steps in the linear warm-up, default 0.05. */
  readonly warmupFraction?: number;
  readonly beta1?: number;
  readonly beta2?: number;
  readonly epsilon?: number;
  /** Seeds init, shuffles, augmentation, dropout and random pairings. Default 0. */
  readonly seed?: number;
  /** Default 'auto': libtensorflow on a CUDA GPU, else webgpu on a hardware adapter, else libtensorflow or wasm. */
  readonly backend?: BackendChoice;
  /** Model folder the checkpoints go to (MODEL/latest.json -> ckpt-N/). */
  readonly out: string;
  /** A model folder to start from: its architecture, weights and gene panel. */
  readonly init?: string | null;
  /** 'backbone': train the head only, on cached backbone features. Default 'none'. */
  readonly freeze?: FreezeMode;
  /** Continue the run in `out` from its latest checkpoint. */
  readonly resume?: boolean;
  /** Architecture overrides of a fresh model (e.g. a small image encoder); not with init or resume. */
  readonly modelConfig?: ModelConfigInput;
  /**
   * The gene panel of a fresh model (e.g. chosen on more sections than those trained on); default: highly variable
   * genes of the training sections, as many as the model config's gene.panelSize. Not with init or resume.
   */
  readonly genePanel?: GenePanel;
  /** Patch augmentation; default DEFAULT_AUGMENT (flips, 90° rotations, colour jitter 0.5); null for none. */
  readonly augment?: AugmentOptions | null;
  /** Checkpoints kept in `out` (default 2). */
  readonly keepCheckpoints?: number;
  /** Abort: the current step finishes, a checkpoint is saved, train() resolves with status 'aborted'. */
  readonly signal?: AbortSignal;
  /**
   * Tests only: make the loss of (epoch, step), both 1-based, NaN; run `beforeStep` before a step (e.g. to destroy
   * the GPU device).
   */
  readonly faults?: {
    readonly nonFiniteLossAt?: (epoch: number, step: number) => boolean;
    readonly beforeStep?: (epoch: number, step: number) => void;
  };
}

/** After every optimizer step. Epochs and steps are 1-based. */
export interface StepProgress {
  readonly epoch: number;
  readonly epochs: number;
  readonly step: number;
  readonly stepsPerEpoch: number;
  /** Optimizer steps taken in all (the resumed ones included). */
  readonly globalStep: number;
  readonly totalSteps: number;
  readonly loss: number;
  readonly contrastive: number;
  readonly crossEntailment: number;
  readonly intraEntailment: number;
  /** c (null in clip mode). */
  readonly curvature: number | null;
  readonly logitScale: number;
  readonly lr: number;
  /** Global L2 norm of the gradient, before the step. */
  readonly gradNorm: number;
  /** Over the steps of this epoch so far. */
  readonly spotsPerSecond: number;
  /** Until the last step of the run, from this run's mean step time (checkpoint saves not included). */
  readonly etaSeconds: number;
}

/** After every epoch (and in the checkpoint's metrics history). Loss terms are means over the epoch's steps. */
export interface EpochMetrics {
  readonly epoch: number;
  readonly steps: number;
  readonly loss: number;
  readonly contrastive: number;
  readonly crossEntailment: number;
  readonly intraEntailment: number;
  /** c and s at the end of the epoch (c null in clip mode). */
  readonly curvature: number | null;
  readonly scale: number;
  /**
   * Mean distance to the origin of the image and gene embeddings over the epoch's training batches: the geodesic
   * d(O, z) in meru/delst, the Euclidean norm of the projection in clip mode.
   */
  readonly meanNormImage: number;
  readonly meanNormGene: number;
  /** Learning rate of the epoch's last step. */
  readonly lr: number;
  readonly spotsPerSecond: number;
  /** Time in training steps (checkpoint saving not included). */
  readonly seconds: number;
}

export interface TrainCallbacks {
  /** What the trainer is doing before the steps start (reading, cutting patches, caching features). */
  onStatus?(message: string): void;
  onStep?(progress: StepProgress): void;
  /** After the epoch's checkpoint is saved. */
  onEpoch?(metrics: EpochMetrics): void;
}

export interface TrainResult {
  readonly status: 'completed' | 'aborted';
  /** Epochs completed and optimizer steps taken, in all. */
  readonly epochs: number;
  readonly steps: number;
  readonly backend: string;
  readonly device: string;
  readonly threads: number;
  /** Spots per second of this run's training steps. */
  readonly spotsPerSecond: number;
  readonly out: string;
  /** The checkpoint folder holding the final state (null when nothing was trained or saved). */
  readonly checkpoint: string | null;
  readonly metrics: readonly EpochMetrics[];
  readonly resumedFrom: { readonly epoch: number; readonly step: number } | null;
}

/** A problem with the trainer's input (a message for the user, no stack needed). */
export class TrainingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrainingError';
  }
}

/** The GPU failed mid-run (device lost, out of memory): the run stops, the last good checkpoint stays current. */
export class DeviceFailureError extends TrainingError {
  constructor(
    message: string,
    readonly epoch: number,
    readonly step: number,
  ) {
    super(message);
    this.name = 'DeviceFailureError';
  }
}

/** The loss or gradient became NaN or Inf: the run stops, the last good checkpoint stays current. */
export class NonFiniteLossError extends TrainingError {
  constructor(
    message: string,
    readonly epoch: number,
    readonly step: number,
  ) {
    super(message);
    this.name = 'NonFiniteLossError';
  }
}

export const TRAINER_KIND = 'delst-trainer';
export const TRAINER_RECORD_VERSION = 1;

/** Every setting of a run, resolved; saved in the checkpoint's `training` record. */
interface RunSettings {
  mode: EmbeddingMode;
  loss: LossConfig;
  epochs: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  warmupFraction: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  seed: number;
  freeze: FreezeMode;
  init: string | null;
  augment: AugmentOptions | null;
}

/** Sums over the steps of an epoch so far (JSON: saved with a mid-epoch checkpoint). */
interface EpochSums {
  steps: number;
  spots: number;
  seconds: number;
  loss: number;
  contrastive: number;
  crossEntailment: number;
  intraEntailment: number;
  meanNormImage: number;
  meanNormGene: number;
  lr: number;
}

interface TrainingRecord extends RunSettings {
  trainer: typeof TRAINER_KIND;
  version: number;
  backend: string;
  threads: number;
  datasetSize: number;
  stepsPerEpoch: number;
  /** Where the run stands: `stepInEpoch` steps of epoch `epochsCompleted + 1` are done (0 at an epoch's end). */
  progress: { epochsCompleted: number; stepInEpoch: number; partial: EpochSums | null };
}

const emptySums = (): EpochSums => ({
  steps: 0,
  spots: 0,
  seconds: 0,
  loss: 0,
  contrastive: 0,
  crossEntailment: 0,
  intraEntailment: 0,
  meanNormImage: 0,
  meanNormGene: 0,
  lr: 0,
});

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

// ---- one step ---------------------------------------------------------------------------------------------------

/** A batch as the step sees it: images and expression (full model) or cached backbone features (frozen). */
export interface StepBatch {
  readonly patches?: tf.Tensor4D;
  readonly expression?: tf.Tensor2D;
  readonly imageFeatures?: tf.Tensor2D;
  readonly geneFeatures?: tf.Tensor2D;
  readonly nnz: Float32Array;
  readonly nnzRank: Float32Array;
  readonly sectionIndex: Int32Array;
}

export interface StepContext {
  readonly model: DelstModel;
  readonly optimizer: AdamW;
  readonly loss: LossConfig;
  /** Dataset-wide nnz level edges for the quantileLevels pairing. */
  readonly nnzQuantileEdges?: number[];
}

export interface StepSettings {
  readonly lr: number;
  readonly dropoutSeed: number;
  /** Seeds the randomPartner pairing. */
  readonly pairSeed: number;
  /** Tests only: multiply the loss by NaN. */
  readonly corrupt?: boolean;
}

export interface StepValues {
  readonly loss: number;
  readonly contrastive: number;
  readonly crossEntailment: number;
  readonly intraEntailment: number;
  readonly meanNormImage: number;
  readonly meanNormGene: number;
  readonly gradNorm: number;
  /** False when the loss or the gradient was not finite: nothing was changed. */
  readonly applied: boolean;
}

/** Mean distance to the origin of a batch of embeddings (clip: mean Euclidean norm). */
function meanNorm(z: tf.Tensor2D, curvature: tf.Scalar | null): tf.Scalar {
  return tf.mean(curvature ? distanceToOrigin(z, curvature) : safeNorm(z, false));
}

/** The first half of a step: gradients, and one small tensor holding what must be read before applying them. */
interface ComputedStep {
  readonly grads: tf.Tensor[];
  readonly gradMap: tf.NamedTensorMap;
  /** [contrastive, cross, intra, |z| image, |z| gene, loss, |grad|^2]. */
  readonly read: tf.Tensor1D;
}

function computeStep(
  ctx: StepContext,
  batch: StepBatch,
  settings: StepSettings,
  expressionSimilarity: number[][] | undefined,
): ComputedStep {
  const { model } = ctx;
  const variables = model.store.trainable();
  let stats: tf.Tensor | null = null;
  const { value, grads } = tf.variableGrads(() => {
    let e: Embeddings;
    if (batch.imageFeatures && batch.geneFeatures) {
      e = model.embedFeatures(batch.imageFeatures, batch.geneFeatures);
    } else {
      if (!batch.patches || !batch.expression) throw new Error('trainStep: the batch has neither images nor features');
      e = model.embed(batch.patches, batch.expression, true, { dropoutSeed: settings.dropoutSeed });
    }
    const rng = new Rng(settings.pairSeed);
    const terms = computeLoss(
      {
        image: e.image,
        gene: e.gene,
        // clip mode has no curvature; the CLIP loss does not read it.
        curvature: e.curvature ?? tf.scalar(1),
        logitScale: e.logitScale,
        nnz: batch.nnz,
        sectionOf: batch.sectionIndex,
        nnzRankInSection: batch.nnzRank,
        nnzQuantileEdges: ctx.nnzQuantileEdges,
        expressionSimilarity,
        random: () => rng.next(),
      },
      ctx.loss,
    );
    stats = tf.keep(
      tf.stack([
        terms.contrastive,
        terms.crossEntailment,
        terms.intraEntailment,
        meanNorm(e.image, e.curvature),
        meanNorm(e.gene, e.curvature),
      ]),
    );
    return settings.corrupt ? tf.mul(terms.total, NaN) : terms.total;
  }, variables);
  const gradList = Object.values(grads).filter((g): g is tf.Tensor => g != null);
  const read = tf.tidy(() => {
    // One reduction over all gradients laid end to end: on a GPU, a square and a sum per param were ~150 dispatches.
    const flat = gradList.length > 0 ? tf.concat(gradList.map((g) => tf.reshape(g, [-1]))) : tf.zeros([1]);
    const gradSq = tf.sum(tf.square(flat));
    return tf.concat([stats as unknown as tf.Tensor1D, tf.reshape(value, [1]), tf.reshape(gradSq, [1])]);
  });
  tf.dispose([stats as unknown as tf.Tensor, value]);
  return { grads: gradList, gradMap: grads, read: read as tf.Tensor1D };
}

/** The second half: AdamW and the clamps where the values `v` of `step.read` are finite; disposes the step. */
function applyStep(ctx: StepContext, step: ComputedStep, v: ArrayLike<number>, lr: number): StepValues {
  tf.dispose(step.read);
  const finite = Number.isFinite(v[5]) && Number.isFinite(v[6]);
  if (finite) {
    ctx.optimizer.apply(step.gradMap, lr);
    ctx.model.clampParameters();
  }
  tf.dispose(step.grads);
  return {
    loss: v[5],
    contrastive: v[0],
    crossEntailment: v[1],
    intraEntailment: v[2],
    meanNormImage: v[3],
    meanNormGene: v[4],
    gradNorm: Math.sqrt(v[6]),
    applied: finite,
  };
}

/**
 * One training step: loss and gradients of the trainable params, a finiteness check, AdamW, the clamps. Leaves
 * no tensor behind; the batch's tensors remain the caller's. Reads asynchronously, which every backend supports
 * (webgpu in Node only this way). When the backend reports a device fault (backendFault) once the values are read,
 * nothing is applied and it is thrown.
 */
export async function trainStepAsync(ctx: StepContext, batch: StepBatch, settings: StepSettings): Promise<StepValues> {
  // The nearestLowerNnz pairs come from plain numbers, read before the gradient tape (no sync read inside it).
  const similarity =
    ctx.loss.mode === 'delst' && ctx.loss.intraPairing === 'nearestLowerNnz' && batch.expression
      ? await expressionSimilarity(batch.expression)
      : undefined;
  const step = computeStep(ctx, batch, settings, similarity);
  let v: ArrayLike<number>;
  try {
    v = await step.read.data();
    throwOnFault();
  } catch (error) {
    tf.dispose([step.read, ...step.grads]);
    throw error;
  }
  return applyStep(ctx, step, v, settings.lr);
}

// ---- the run ----------------------------------------------------------------------------------------------------

/** Trains (or fine-tunes, or resumes) a model; see TrainOptions. Throws TrainingError on bad input. */
export async function train(options: TrainOptions, callbacks: TrainCallbacks = {}): Promise<TrainResult> {
  const status = (message: string) => callbacks.onStatus?.(message);
  const out = path.resolve(options.out);
  const signal = options.signal;

  let resumed: LoadedCheckpoint | null = null;
  let record: TrainingRecord | null = null;
  if (options.resume) {
    if (!hasCheckpoint(out)) throw new TrainingError(`--resume: ${out} holds no checkpoint to continue`);
    resumed = await loadCheckpoint(out);
    record = trainingRecord(resumed);
    if (options.modelConfig) throw new TrainingError('--resume continues the saved model: give no model config');
  } else if (hasCheckpoint(out)) {
    throw new TrainingError(`${out} already holds a model: pass --resume to continue its run, or choose another --out`);
  }
  const settings = resolveSettings(options, record);
  if (options.init && (options.modelConfig || options.genePanel) && !resumed) {
    throw new TrainingError('--init takes the architecture and gene panel of the initial model: give neither here');
  }
  if (resumed && options.genePanel) throw new TrainingError('--resume continues with the saved gene panel');

  const backend = await initBackend(options.backend ?? 'auto');
  status(`backend: ${backend.device}`);
  const sections = await readSections(options.sections, status);

  // Model and gene panel.
  let model: DelstModel;
  let panel: GenePanel;
  if (resumed) {
    const manifest = resumed.manifest;
    if (!manifest.genePanel) throw new TrainingError(`${resumed.path}: the checkpoint has no gene panel`);
    panel = manifest.genePanel;
    model = new DelstModel(manifest.config, deriveSeed(settings.seed, 'model'));
    disposeOnError(model, () => restoreParams(model.store, resumed!));
  } else if (settings.init) {
    const initial = await loadCheckpoint(settings.init).catch((error: unknown) => {
      throw new TrainingError(`--init ${settings.init}: ${error instanceof Error ? error.message : String(error)}`);
    });
    if (!initial.manifest.genePanel) throw new TrainingError(`--init ${settings.init}: the model has no gene panel`);
    panel = initial.manifest.genePanel;
    const config = validateModelConfig({ ...initial.manifest.config, mode: settings.mode });
    model = new DelstModel(config, deriveSeed(settings.seed, 'model'));
    const { skipped } = disposeOnError(model, () => restoreParams(model.store, initial, false));
    if (skipped.length > 0) {
      status(`--init: ${skipped.length} params are new to this mode and start fresh (${skipped.join(', ')})`);
    }
  } else {
    let requested: ModelConfig;
    try {
      requested = resolveModelConfig({ ...options.modelConfig, mode: settings.mode });
    } catch (error) {
      throw new TrainingError(`model config: ${error instanceof Error ? error.message : String(error)}`);
    }
    if (!options.genePanel) status('choosing the gene panel');
    try {
      panel = options.genePanel ?? selectGenePanel(sections, { size: requested.gene.panelSize });
    } catch (error) {
      throw new TrainingError(`gene panel: ${error instanceof Error ? error.message : String(error)}`);
    }
    model = new DelstModel(withPanelSize(requested, panel.genes.length), deriveSeed(settings.seed, 'model'));
  }
  let optimizer: AdamW | null = null;
  try {
    if (resumed || settings.init || options.genePanel) {
      for (const section of sections) {
        const { found, missing } = panelCoverage(section, panel);
        if (missing.length > 0) {
          status(`${section.name}: ${missing.length} of ${panel.genes.length} panel genes not measured (read as 0)`);
        }
        if (found === 0) throw new TrainingError(`${section.name} measures none of the model's panel genes`);
      }
    }
    const config = model.config;
    status('cutting patches');
    const dataset = await buildDataset(sections, panel, {
      inputSize: config.image.inputSize,
      onProgress: (done, total, name) => name && status(`cutting patches: ${name} (${done + 1}/${total})`),
    });
    if (dataset.size < 2) throw new TrainingError('training needs at least 2 in-tissue spots');
    if (resumed) checkSameData(resumed.manifest, dataset);
    if (backend.adapter) fitBatchToAdapter(settings, config, backend.adapter, resumed !== null, status);

    let cached: { image: Float32Array; gene: Float32Array; imageWidth: number; geneWidth: number } | null = null;
    if (settings.freeze === 'backbone') {
      model.store.setTrainable((name) => !name.startsWith('head.'), false);
      if (!signal?.aborted) {
        status('caching backbone features');
        cached = await backboneFeatures(model, dataset, { batchSize: settings.batchSize });
      }
    }

    const lossConfig = settings.loss;
    const nnzQuantileEdges =
      lossConfig.intraPairing === 'quantileLevels' && lossConfig.nnzNormalization === 'none'
        ? quantileEdges(dataset.nnz, lossConfig.quantileLevels)
        : undefined;
    optimizer = new AdamW(model.store.trainableEntries(), {
      beta1: settings.beta1,
      beta2: settings.beta2,
      epsilon: settings.epsilon,
      weightDecay: settings.weightDecay,
    });
    if (resumed) {
      if (!resumed.optimizer) throw new TrainingError(`${resumed.path}: the checkpoint has no optimizer state`);
      optimizer.importState(resumed.optimizer);
    }

    const stepsPerEpoch = Math.ceil(dataset.size / settings.batchSize);
    const totalSteps = settings.epochs * stepsPerEpoch;
    const startEpoch = record ? record.progress.epochsCompleted : 0;
    const startStep = record ? record.progress.stepInEpoch : 0;
    let globalStep = resumed ? resumed.manifest.step : 0;
    if (globalStep !== startEpoch * stepsPerEpoch + startStep || optimizer.step !== globalStep) {
      throw new TrainingError(`${resumed?.path}: the checkpoint's step count does not match its epoch and position`);
    }
    const metrics: EpochMetrics[] = resumed ? [...(resumed.manifest.metrics as unknown as EpochMetrics[])] : [];
    let sums = record?.progress.partial ?? emptySums();
    let lastCheckpoint = resumed?.path ?? null;
    let saved = { epoch: startEpoch, step: globalStep };
    let run = { steps: 0, spots: 0, seconds: 0 };

    // Everything a checkpoint holds is read before it is written (the backend caches the values), so that a GPU
    // fault found meanwhile keeps this state out of the checkpoints.
    const settle = async (tensors: tf.Tensor[]) => {
      if (backend.name !== 'webgpu') return;
      await Promise.all(tensors.map((t) => t.data()));
      throwOnFault();
    };
    const save = async (epochsCompleted: number, stepInEpoch: number, partial: EpochSums | null) => {
      const optimizerState = optimizer!.exportState();
      const slots = [...optimizerState.slots.values()].filter((t): t is tf.Tensor => t instanceof tf.Tensor);
      await settle([...model.store.names().map((name) => model.store.get(name)), ...slots]);
      const training: TrainingRecord = {
        trainer: TRAINER_KIND,
        version: TRAINER_RECORD_VERSION,
        ...settings,
        backend: backend.name,
        threads: backend.threads,
        datasetSize: dataset.size,
        stepsPerEpoch,
        progress: { epochsCompleted, stepInEpoch, partial },
      };
      lastCheckpoint = await saveCheckpoint(
        out,
        {
          config,
          store: model.store,
          genePanel: panel,
          data: { sections: dataset.sections.map(({ name, source, spots }) => ({ name, source, spots })) },
          training: training as unknown as Record<string, unknown>,
          metrics: metrics as unknown as Record<string, unknown>[],
          epoch: epochsCompleted,
          step: globalStep,
          optimizer: optimizerState,
        },
        { keep: options.keepCheckpoints ?? 2 },
      );
      saved = { epoch: epochsCompleted, step: globalStep };
    };
    const result = (status: TrainResult['status']): TrainResult => ({
      status,
      epochs: saved.epoch,
      steps: globalStep,
      backend: backend.name,
      device: backend.device,
      threads: backend.threads,
      spotsPerSecond: run.seconds > 0 ? run.spots / run.seconds : 0,
      out,
      checkpoint: lastCheckpoint,
      metrics,
      resumedFrom: resumed ? { epoch: startEpoch, step: resumed.manifest.step } : null,
    });

    if (startEpoch < settings.epochs && !signal?.aborted) {
      status(
        resumed
          ? `resuming at epoch ${startEpoch + 1}, step ${startStep + 1} of ${stepsPerEpoch}`
          : `training: ${dataset.size} spots, ${stepsPerEpoch} steps per epoch`,
      );
    }
    for (let epoch = startEpoch; epoch < settings.epochs; epoch++) {
      const batches = epochBatches(dataset.size, { batchSize: settings.batchSize, seed: settings.seed, epoch });
      for (let s = epoch === startEpoch ? startStep : 0; s < batches.length; s++) {
        if (signal?.aborted) {
          if (globalStep !== saved.step) await save(epoch, s, sums);
          return result('aborted');
        }
        const started = performance.now();
        const lr = learningRate(globalStep, {
          baseLr: settings.lr,
          totalSteps,
          warmupFraction: settings.warmupFraction,
        });
        const batch = cached
          ? featureBatch(dataset, cached, batches[s], lossConfig.intraPairing === 'nearestLowerNnz')
          : makeBatch(dataset, batches[s], {
              augment: settings.augment,
              seed: deriveSeed(settings.seed, 'augment', epoch, s),
            });
        let values: StepValues;
        let scalars: Awaited<ReturnType<DelstModel['scalars']>>;
        try {
          options.faults?.beforeStep?.(epoch + 1, s + 1);
          values = await trainStepAsync({ model, optimizer, loss: lossConfig, nnzQuantileEdges }, batch, {
            lr,
            dropoutSeed: deriveSeed(settings.seed, 'dropout', epoch, s),
            pairSeed: deriveSeed(settings.seed, 'pairs', epoch, s),
            corrupt: options.faults?.nonFiniteLossAt?.(epoch + 1, s + 1) ?? false,
          });
          scalars = await model.scalars(); // read after AdamW and the clamps: they ran without a GPU fault
          throwOnFault();
        } catch (error) {
          if (backend.name !== 'webgpu') throw error;
          throw deviceFailure(error, epoch + 1, s + 1, stepsPerEpoch, out, lastCheckpoint, saved);
        } finally {
          batch.dispose();
        }
        if (!values.applied) {
          throw nonFinite(values, epoch + 1, s + 1, stepsPerEpoch, globalStep + 1, out, lastCheckpoint, saved);
        }
        const seconds = (performance.now() - started) / 1000;
        globalStep++;
        run = { steps: run.steps + 1, spots: run.spots + batches[s].length, seconds: run.seconds + seconds };
        sums = accumulate(sums, values, batches[s].length, seconds, lr);
        callbacks.onStep?.({
          epoch: epoch + 1,
          epochs: settings.epochs,
          step: s + 1,
          stepsPerEpoch,
          globalStep,
          totalSteps,
          loss: values.loss,
          contrastive: values.contrastive,
          crossEntailment: values.crossEntailment,
          intraEntailment: values.intraEntailment,
          curvature: scalars.curvature,
          logitScale: scalars.logitScale,
          lr,
          gradNorm: values.gradNorm,
          spotsPerSecond: sums.seconds > 0 ? sums.spots / sums.seconds : 0,
          etaSeconds: (run.seconds / run.steps) * (totalSteps - globalStep),
        });
        await yieldToEventLoop();
      }
      const scalars = await model.scalars();
      const m = epochMetrics(epoch + 1, sums, scalars.curvature, scalars.logitScale);
      metrics.push(m);
      try {
        await save(epoch + 1, 0, null);
      } catch (error) {
        if (backend.name !== 'webgpu' || error instanceof TrainingError) throw error;
        throw deviceFailure(error, epoch + 1, batches.length, stepsPerEpoch, out, lastCheckpoint, saved);
      }
      sums = emptySums();
      callbacks.onEpoch?.(m);
      if (signal?.aborted && epoch + 1 < settings.epochs) return result('aborted');
    }
    return result(signal?.aborted && saved.epoch < settings.epochs ? 'aborted' : 'completed');
  } finally {
    optimizer?.dispose();
    model.dispose();
  }
}

// ---- helpers ----------------------------------------------------------------------------------------------------

/** Throws the backend's device fault (webgpu: device lost, out of memory), if any. */
function throwOnFault(): void {
  const fault = backendFault();
  if (fault) throw new Error(fault);
}

function disposeOnError<T>(model: DelstModel, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    model.dispose();
    throw error instanceof TrainingError
      ? error
      : new TrainingError(error instanceof Error ? error.message : String(error));
  }
}

function accumulate(sums: EpochSums, v: StepValues, spots: number, seconds: number, lr: number): EpochSums {
  return {
    steps: sums.steps + 1,
    spots: sums.spots + spots,
    seconds: sums.seconds + seconds,
    loss: sums.loss + v.loss,
    contrastive: sums.contrastive + v.contrastive,
    crossEntailment: sums.crossEntailment + v.crossEntailment,
    intraEntailment: sums.intraEntailment + v.intraEntailment,
    meanNormImage: sums.meanNormImage + v.meanNormImage,
    meanNormGene: sums.meanNormGene + v.meanNormGene,
    lr,
  };
}

function epochMetrics(epoch: number, s: EpochSums, curvature: number | null, scale: number): EpochMetrics {
  const n = Math.max(1, s.steps);
  return {
    epoch,
    steps: s.steps,
    loss: s.loss / n,
    contrastive: s.contrastive / n,
    crossEntailment: s.crossEntailment / n,
    intraEntailment: s.intraEntailment / n,
    curvature,
    scale,
    meanNormImage: s.meanNormImage / n,
    meanNormGene: s.meanNormGene / n,
    lr: s.lr,
    spotsPerSecond: s.seconds > 0 ? s.spots / s.seconds : 0,
    seconds: s.seconds,
  };
}

function nonFinite(
  v: StepValues,
  epoch: number,
  step: number,
  stepsPerEpoch: number,
  globalStep: number,
  out: string,
  checkpoint: string | null,
  saved: { epoch: number; step: number },
): NonFiniteLossError {
  const what = Number.isFinite(v.loss) ? `the gradient became ${v.gradNorm}` : `the loss became ${v.loss}`;
  const kept = checkpoint
    ? `the last good checkpoint (epoch ${saved.epoch}, step ${saved.step}) stays current in ${out}`
    : 'no checkpoint had been saved yet';
  return new NonFiniteLossError(
    `${what} at epoch ${epoch}, step ${step} of ${stepsPerEpoch} (optimizer step ${globalStep}); ` +
      `training stopped without saving this state and ${kept}. A lower --lr may help.`,
    epoch,
    step,
  );
}

function deviceFailure(
  error: unknown,
  epoch: number,
  step: number,
  stepsPerEpoch: number,
  out: string,
  checkpoint: string | null,
  saved: { epoch: number; step: number },
): DeviceFailureError {
  const cause = backendFault() ?? `the GPU step failed: ${error instanceof Error ? error.message : String(error)}`;
  const kept = checkpoint
    ? `the last good checkpoint (epoch ${saved.epoch}, step ${saved.step}) stays current in ${out}; continue with ` +
      '--resume (on the GPU, or with --backend wasm on the CPU)'
    : 'no checkpoint had been saved yet';
  return new DeviceFailureError(
    `${cause} at epoch ${epoch}, step ${step} of ${stepsPerEpoch}; training stopped without saving this state and ${kept}.`,
    epoch,
    step,
  );
}

/**
 * A fresh run takes the largest batch the adapter's buffers hold where the requested one would not fit (and says
 * so); a resumed run must keep its batch.
 */
function fitBatchToAdapter(
  settings: RunSettings,
  config: ModelConfig,
  adapter: AdapterDescription,
  resuming: boolean,
  status: (message: string) => void,
): void {
  const fits = maxBatchForAdapter(config, adapter);
  if (settings.batchSize <= fits) return;
  const mib = Math.round(Math.min(adapter.maxStorageBufferBindingSize, adapter.maxBufferSize) / 2 ** 20);
  if (resuming || fits < 2) {
    throw new TrainingError(
      `batch ${settings.batchSize} does not fit this GPU adapter (largest buffer ${mib} MiB, room for ${fits} spots); ` +
        (resuming ? 'resume on another backend (--backend wasm)' : 'use --backend wasm'),
    );
  }
  status(`batch ${settings.batchSize} does not fit the adapter's ${mib} MiB buffers: training with batch ${fits}`);
  settings.batchSize = fits;
}

/** A batch from cached backbone features (plus expression where the pairing needs it). */
function featureBatch(
  dataset: SpotDataset,
  cached: { image: Float32Array; gene: Float32Array; imageWidth: number; geneWidth: number },
  indices: Int32Array,
  withExpression: boolean,
): StepBatch & { dispose(): void } {
  const imageFeatures = tf.tensor2d(gatherRows(cached.image, cached.imageWidth, indices), [
    indices.length,
    cached.imageWidth,
  ]);
  const geneFeatures = tf.tensor2d(gatherRows(cached.gene, cached.geneWidth, indices), [
    indices.length,
    cached.geneWidth,
  ]);
  const expression = withExpression
    ? tf.tensor2d(gatherRows(dataset.expression, dataset.panelSize, indices), [indices.length, dataset.panelSize])
    : undefined;
  return {
    imageFeatures,
    geneFeatures,
    expression,
    nnz: Float32Array.from(indices, (i) => dataset.nnz[i]),
    nnzRank: Float32Array.from(indices, (i) => dataset.nnzRank[i]),
    sectionIndex: Int32Array.from(indices, (i) => dataset.sectionIndex[i]),
    dispose: () => tf.dispose([imageFeatures, geneFeatures, ...(expression ? [expression] : [])]),
  };
}

function gatherRows(data: Float32Array, width: number, indices: Int32Array): Float32Array {
  const out = new Float32Array(indices.length * width);
  indices.forEach((row, k) => out.set(data.subarray(row * width, (row + 1) * width), k * width));
  return out;
}

async function readSections(inputs: TrainOptions['sections'], status: (m: string) => void): Promise<Section[]> {
  if (inputs.length === 0) throw new TrainingError('give at least one section to train on');
  const sections: Section[] = [];
  for (const input of inputs) {
    if (typeof input !== 'string') {
      sections.push(input);
      continue;
    }
    status(`reading ${input}`);
    const { sections: found, failures } = await openSections(input);
    if (failures.length > 0) throw new TrainingError(`${input}: ${failures[0].message}`);
    sections.push(...found);
  }
  for (const section of sections) {
    if (!section.image) {
      throw new TrainingError(`${section.name} (${section.source}) has no H&E image: training needs one per section`);
    }
  }
  return sections;
}

function trainingRecord(checkpoint: LoadedCheckpoint): TrainingRecord {
  const record = checkpoint.manifest.training as unknown as TrainingRecord | null;
  if (!record || record.trainer !== TRAINER_KIND || !record.progress) {
    throw new TrainingError(`${checkpoint.path}: not a checkpoint of a training run (an exported model?)`);
  }
  if (record.version > TRAINER_RECORD_VERSION) {
    throw new TrainingError(`${checkpoint.path}: written by a newer trainer (record version ${record.version})`);
  }
  return record;
}

/** The sections must be the run's, in the same order, with the same spots. */
function checkSameData(manifest: CheckpointManifest, dataset: SpotDataset): void {
  const before = manifest.data?.sections ?? [];
  const now = dataset.sections;
  const same =
    before.length === now.length && before.every((s, i) => s.name === now[i].name && s.spots === now[i].spots);
  if (!same) {
    const list = (l: readonly { name: string; spots: number }[]) => l.map((s) => `${s.name} (${s.spots})`).join(', ');
    throw new TrainingError(`--resume: the run trained on ${list(before)}, not ${list(now)}; give the same sections`);
  }
}

const positive = (name: string, v: number) => {
  if (!(v > 0) || !Number.isFinite(v)) throw new TrainingError(`${name} must be a positive number, not ${v}`);
};

/** Options resolved over the defaults, or over the resumed run's settings (a differing option is an error). */
function resolveSettings(options: TrainOptions, record: TrainingRecord | null): RunSettings {
  const mode = options.mode ?? record?.mode ?? 'delst';
  if (!EMBEDDING_MODES.includes(mode)) {
    throw new TrainingError(`mode must be one of ${EMBEDDING_MODES.join(', ')}, not ${JSON.stringify(mode)}`);
  }
  let loss: LossConfig;
  try {
    loss = makeLossConfig({ ...(record?.loss ?? {}), ...options.loss, mode });
  } catch (error) {
    throw new TrainingError(error instanceof Error ? error.message : String(error));
  }
  const settings: RunSettings = {
    mode,
    loss,
    epochs: options.epochs ?? record?.epochs ?? NaN,
    batchSize: options.batchSize ?? record?.batchSize ?? 64,
    lr: options.lr ?? record?.lr ?? 1e-4,
    weightDecay: options.weightDecay ?? record?.weightDecay ?? DEFAULT_ADAMW.weightDecay,
    warmupFraction: options.warmupFraction ?? record?.warmupFraction ?? 0.05,
    beta1: options.beta1 ?? record?.beta1 ?? DEFAULT_ADAMW.beta1,
    beta2: options.beta2 ?? record?.beta2 ?? DEFAULT_ADAMW.beta2,
    epsilon: options.epsilon ?? record?.epsilon ?? DEFAULT_ADAMW.epsilon,
    seed: options.seed ?? record?.seed ?? 0,
    freeze: options.freeze ?? record?.freeze ?? 'none',
    init: record ? record.init : options.init ? path.resolve(options.init) : null,
    augment: options.augment !== undefined ? options.augment : record ? record.augment : DEFAULT_AUGMENT,
  };
  if (!Number.isInteger(settings.epochs) || settings.epochs < 1) {
    throw new TrainingError(`epochs must be a whole number >= 1, not ${options.epochs}`);
  }
  if (!Number.isInteger(settings.batchSize) || settings.batchSize < 2) {
    throw new TrainingError(`batch size must be a whole number >= 2, not ${settings.batchSize}`);
  }
  positive('lr', settings.lr);
  if (!(settings.weightDecay >= 0)) throw new TrainingError(`weight decay must be >= 0, not ${settings.weightDecay}`);
  if (!(settings.warmupFraction >= 0 && settings.warmupFraction < 1)) {
    throw new TrainingError(`warm-up fraction must be in [0, 1), not ${settings.warmupFraction}`);
  }
  if (!Number.isInteger(settings.seed) || settings.seed < 0) {
    throw new TrainingError(`seed must be a whole number >= 0, not ${settings.seed}`);
  }
  if (settings.freeze !== 'none' && settings.freeze !== 'backbone') {
    throw new TrainingError(`freeze must be 'none' or 'backbone', not ${JSON.stringify(settings.freeze)}`);
  }
  if (record) {
    // Everything but the epoch count must be the run's: anything else would not continue the same run.
    const { epochs: _epochs, ...now } = settings;
    const { epochs: _savedEpochs, ...before } = pickSettings(record);
    for (const key of Object.keys(now) as (keyof typeof now)[]) {
      if (JSON.stringify(now[key]) !== JSON.stringify(before[key])) {
        throw new TrainingError(
          `--resume: the run was trained with ${key} ${JSON.stringify(before[key])}, not ${JSON.stringify(now[key])}; ` +
            'leave the option out, or start a new run in another --out',
        );
      }
    }
    if (settings.epochs < record.progress.epochsCompleted) {
      throw new TrainingError(
        `--resume: the run has already trained ${record.progress.epochsCompleted} epochs, more than --epochs ${settings.epochs}`,
      );
    }
  }
  return settings;
}

function pickSettings(record: TrainingRecord): RunSettings {
  const { mode, loss, epochs, batchSize, lr, weightDecay, warmupFraction, beta1, beta2, epsilon, seed } = record;
  const { freeze, init, augment } = record;
  return {
    mode,
    loss,
    epochs,
    batchSize,
    lr,
    weightDecay,
    warmupFraction,
    beta1,
    beta2,
    epsilon,
    seed,
    freeze,
    init,
    augment,
  };
}
