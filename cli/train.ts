// `delst train SECTION... --mode clip|meru|delst --epochs N --out DIR [options]`: trains, fine-tunes or resumes a
// model. With --json: one JSON object per epoch on stdout, then a summary object. Without: a progress bar on
// stderr (terminals only) and a line per epoch on stdout. Ctrl-C finishes the current step, saves a checkpoint
// and exits 130 (a second Ctrl-C exits at once; the last complete checkpoint stays valid).

import { existsSync } from 'node:fs';
import { BACKEND_CHOICES, type BackendChoice } from '../core/engine/backend.js';
import { EMBEDDING_MODES, type ModelConfigInput } from '../core/engine/config.js';
import type { CrossDirection, IntraPairing, Modality, NnzNormalization } from '../core/engine/losses.js';
import { train, type EpochMetrics, type LossOverrides, type TrainOptions } from '../core/engine/trainer.js';
import { baseModelPath } from '../core/resources.js';
import { choiceOption, numberOption, parseArgs, UsageError } from './args.js';
import { progressBar, type Progress } from './progress.js';

export const TRAIN_USAGE = `Usage: delst train SECTION... --mode clip|meru|delst --epochs N --out DIR [options]

Trains the image and gene encoders on the spots of the given sections (each needs its H&E image).
A checkpoint is saved in DIR after every epoch; Ctrl-C saves one and stops.

Options:
  --mode M            clip, meru or delst (default delst)
  --epochs N          epochs in all (with --resume: the saved run's unless given)
  --out DIR           model folder (must not hold a model yet, unless --resume)
  --init MODEL        start from a trained model (its weights and gene panel); 'base': the bundled base model
  --freeze backbone   train the projection head only, on cached backbone features (fast fine-tuning)
  --resume            continue the run in DIR from its last checkpoint
  --backend B         auto, tensorflow, webgpu or wasm (default auto: a CUDA GPU, else a GPU through WebGPU,
                      else the CPU)
  --seed S            seed of init, shuffles, augmentation and dropout (default 0)
  --batch N           spots per step (default 64)
  --lr X              peak learning rate (default 1e-4)
  --weight-decay X    AdamW decoupled weight decay (default 0.2)
  --warmup X          share of the steps in the linear warm-up (default 0.05)
  --lambda X          weight of the cross-modal entailment loss (default 0.2)
  --beta X            weight of the intra-modal entailment loss (default 0.2)
  --direction D       geneEntailsImage (default) or imageEntailsGene
  --pairing P         intra pairs: allPairs (default), randomPartner, nearestLowerNnz, quantileLevels
  --intra M,...       modalities of the intra loss: gene,image (default), gene or image
  --nnz N             none (default) or perSectionRank
  --no-augment        no flips, rotations or colour jitter
  --json              one JSON object per epoch and a summary on stdout`;

const VALUED = [
  'mode',
  'epochs',
  'out',
  'init',
  'freeze',
  'backend',
  'seed',
  'batch',
  'lr',
  'weight-decay',
  'warmup',
  'lambda',
  'beta',
  'direction',
  'pairing',
  'intra',
  'nnz',
  // Hidden (tests, experiments): architecture overrides of a fresh model, as JSON.
  'model-config',
];
const FLAGS = ['resume', 'json', 'no-augment'];

/** The trainer's options from the command line; throws UsageError. */
export function trainOptionsFromArgs(args: readonly string[]): TrainOptions & { json: boolean } {
  const parsed = parseArgs(args, VALUED, FLAGS);
  const has = (name: string) => parsed.options.has(name);
  const resume = has('resume');
  const sections = parsed.positional;
  if (sections.length === 0) throw new UsageError('give at least one SECTION to train on');
  const out = parsed.options.get('out');
  if (!out) throw new UsageError('--out DIR is required');
  const epochs = numberOption(parsed, 'epochs', { integer: true, min: 1 });
  if (epochs === undefined && !resume) throw new UsageError('--epochs N is required');

  const loss: { -readonly [K in keyof LossOverrides]: LossOverrides[K] } = {};
  loss.lambda = numberOption(parsed, 'lambda', { min: 0 });
  loss.beta = numberOption(parsed, 'beta', { min: 0 });
  loss.crossDirection = choiceOption<CrossDirection>(parsed, 'direction', ['geneEntailsImage', 'imageEntailsGene']);
  loss.intraPairing = choiceOption<IntraPairing>(parsed, 'pairing', [
    'allPairs',
    'randomPartner',
    'nearestLowerNnz',
    'quantileLevels',
  ]);
  loss.nnzNormalization = choiceOption<NnzNormalization>(parsed, 'nnz', ['none', 'perSectionRank']);
  const intra = parsed.options.get('intra');
  if (intra !== undefined) {
    const list = intra.split(',').map((s) => s.trim());
    if (list.some((m) => m !== 'gene' && m !== 'image') || new Set(list).size !== list.length) {
      throw new UsageError(`--intra must list gene and/or image, not ${JSON.stringify(intra)}`);
    }
    loss.intraModalities = list as Modality[];
  }
  for (const key of Object.keys(loss) as (keyof LossOverrides)[]) if (loss[key] === undefined) delete loss[key];

  let modelConfig: ModelConfigInput | undefined;
  const configText = parsed.options.get('model-config');
  if (configText !== undefined) {
    try {
      modelConfig = JSON.parse(configText) as ModelConfigInput;
    } catch {
      throw new UsageError('--model-config must be JSON');
    }
  }

  return {
    sections,
    out,
    epochs,
    resume,
    mode: choiceOption(parsed, 'mode', EMBEDDING_MODES),
    init: initPath(parsed.options.get('init')),
    freeze: choiceOption(parsed, 'freeze', ['none', 'backbone'] as const),
    backend: choiceOption<BackendChoice>(parsed, 'backend', BACKEND_CHOICES),
    seed: numberOption(parsed, 'seed', { integer: true, min: 0 }),
    batchSize: numberOption(parsed, 'batch', { integer: true, min: 2 }),
    lr: numberOption(parsed, 'lr', { positive: true }),
    weightDecay: numberOption(parsed, 'weight-decay', { min: 0 }),
    warmupFraction: numberOption(parsed, 'warmup', { min: 0 }),
    loss: Object.keys(loss).length > 0 ? loss : undefined,
    augment: has('no-augment') ? null : undefined,
    modelConfig,
    json: has('json'),
  };
}

/** `--init base` (and MODEL `base` elsewhere) names the bundled base model (unless a folder called base is right here). */
export function initPath(value: string | undefined): string | undefined {
  return value === 'base' && !existsSync(value) ? baseModelPath() : value;
}

const fixed = (v: number | null, digits = 4) => (v === null ? '-' : v.toFixed(digits));

function epochLine(m: EpochMetrics, epochs: number): string {
  return [
    `epoch ${m.epoch}/${epochs}`,
    `loss ${fixed(m.loss)}`,
    `contrastive ${fixed(m.contrastive)}`,
    `cross ${fixed(m.crossEntailment)}`,
    `intra ${fixed(m.intraEntailment)}`,
    `c ${fixed(m.curvature, 3)}`,
    `s ${fixed(m.scale, 2)}`,
    `|z| image ${fixed(m.meanNormImage, 3)} gene ${fixed(m.meanNormGene, 3)}`,
    `${m.spotsPerSecond.toFixed(1)} spots/s`,
    `${m.seconds.toFixed(1)} s`,
  ].join('  ');
}

/** Runs `delst train`; resolves to the exit code (usage and training errors are thrown to the caller). */
export async function runTrain(args: readonly string[]): Promise<number> {
  const { json, ...options } = trainOptionsFromArgs(args);
  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts > 1) {
      console.error('delst train: interrupted again, exiting without saving (the last checkpoint stays valid)');
      process.exit(130);
    }
    console.error('\ndelst train: interrupted, finishing the current step and saving a checkpoint...');
    controller.abort();
  };
  process.on('SIGINT', onSigint);

  // Started at the first step, so that its ETA leaves out reading and patch cutting.
  const view: { bar: Progress | null } = { bar: null };
  let firstStep: number | null = null;
  let epochs = options.epochs ?? 0;
  try {
    const result = await train(
      { ...options, signal: controller.signal },
      {
        // What it is doing before the first step, for people watching a terminal (pipes get errors only).
        onStatus: (message) => {
          if (!json && process.stderr.isTTY) console.error(`delst train: ${message}`);
        },
        onStep: (p) => {
          epochs = p.epochs;
          firstStep ??= p.globalStep - 1;
          if (!json) view.bar ??= progressBar('training');
          view.bar?.update(
            p.globalStep - firstStep,
            p.totalSteps - firstStep,
            `epoch ${p.epoch}/${p.epochs} loss ${p.loss.toFixed(4)}`,
          );
        },
        onEpoch: (m) => {
          view.bar?.finish();
          console.log(json ? JSON.stringify(m) : epochLine(m, epochs));
        },
      },
    );
    view.bar?.finish();
    const summary = {
      status: result.status,
      epochs: result.epochs,
      steps: result.steps,
      backend: result.backend,
      device: result.device,
      threads: result.threads,
      spotsPerSecond: result.spotsPerSecond,
      out: result.out,
      checkpoint: result.checkpoint,
      resumedFrom: result.resumedFrom,
    };
    if (json) console.log(JSON.stringify(summary));
    if (result.status === 'aborted') {
      console.error(
        result.checkpoint
          ? `delst train: stopped at epoch ${result.epochs}, step ${result.steps}; saved in ${result.out} ` +
              '(continue with --resume)'
          : 'delst train: stopped before the first step; nothing was saved',
      );
      return 130;
    }
    if (!json) {
      console.log(
        `trained ${result.epochs} epochs (${result.steps} steps) on ${result.device}, ` +
          `${result.spotsPerSecond.toFixed(1)} spots/s; model in ${result.out}`,
      );
    }
    return 0;
  } finally {
    view.bar?.finish();
    process.off('SIGINT', onSigint);
  }
}
