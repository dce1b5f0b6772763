// Pretrains the base model users fine-tune from: resources/models/delst-base/ (manifest.json + weights.bin).
//
// Data: the three HER2ST sections with an H&E image (A1, A2, B4; Andersson et al., Nat Commun 12:6012, 2021).
// Gene panel: the 1000 most highly variable genes chosen on the counts of all 30 HER2ST sections (the 27 without
// images included: it costs seconds and makes the panel less specific to three sections), with their statistics.
// Model: the default architecture (half-width ResNet-18 on 112 px, gene MLP 1000 -> 512 -> 512, D = 256), mode
// delst with the default losses (lambda = beta = 0.2, gene entails image, all-pairs intra entailment on both
// modalities), AdamW lr 5e-4 (MERU's), wd 0.2, 5% warm-up then cosine, batch 64, seed 0, augmentations on.
// The run checkpoints into .cache/pretrain-base/ every epoch (`-- --resume` continues an interrupted run; without
// it the run starts afresh); the result is exported without optimizer state.
//
// Usage: npm run pretrain:base [-- --epochs N] [--backend auto|tensorflow|webgpu|wasm] [--resume] [--data DIR]

import { rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { BACKEND_CHOICES, type BackendChoice } from '../core/engine/backend.js';
import { exportModel, hasCheckpoint } from '../core/engine/checkpoint.js';
import { selectGenePanel } from '../core/engine/gene-panel.js';
import { train, type EpochMetrics } from '../core/engine/trainer.js';
import { openSections } from '../core/readers/open.js';
import { packageRoot } from '../core/resources.js';

const TRAIN_SECTIONS = ['A1', 'A2', 'B4'];
const DEFAULT_EPOCHS = 12;
const SEED = 0;
const LR = 5e-4;
const PANEL_SIZE = 1000;

interface Args {
  epochs: number;
  backend: BackendChoice;
  resume: boolean;
  data: string;
}

function parse(argv: string[]): Args {
  const args: Args = {
    epochs: DEFAULT_EPOCHS,
    backend: 'auto',
    resume: false,
    data: path.resolve(packageRoot(), '../shared/data/her2st'),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--epochs') args.epochs = Number(argv[++i]);
    else if (a === '--backend') {
      const b = argv[++i];
      if (!BACKEND_CHOICES.includes(b as BackendChoice)) throw new Error(`--backend: ${BACKEND_CHOICES.join(', ')}`);
      args.backend = b as BackendChoice;
    } else if (a === '--resume') args.resume = true;
    else if (a === '--data') args.data = path.resolve(argv[++i]);
    else throw new Error(`unknown option ${a}`);
  }
  if (!Number.isInteger(args.epochs) || args.epochs < 1) throw new Error('--epochs must be a whole number >= 1');
  return args;
}

async function main(): Promise<void> {
  const args = parse(process.argv.slice(2));
  const started = Date.now();
  const since = () => `${((Date.now() - started) / 1000).toFixed(0)} s`;
  const work = path.join(packageRoot(), '.cache', 'pretrain-base');
  const target = path.join(packageRoot(), 'resources', 'models', 'delst-base');
  const resume = args.resume && hasCheckpoint(work);
  if (!resume) await rm(work, { recursive: true, force: true });

  console.error(`reading all HER2ST sections in ${args.data} for the gene panel`);
  const { sections: all, failures } = await openSections(args.data);
  if (failures.length > 0) throw failures[0];
  const training = TRAIN_SECTIONS.map((name) => {
    const section = all.find((s) => s.name === name);
    if (!section) throw new Error(`${args.data} has no section ${name}`);
    return section;
  });
  const genePanel = resume ? undefined : selectGenePanel(all, { size: PANEL_SIZE });
  console.error(
    resume
      ? `resuming the run in ${work}`
      : `gene panel: ${genePanel!.genes.length} genes of ${genePanel!.selection.candidates} shared by ${all.length} sections (${since()})`,
  );

  const result = await train(
    {
      sections: training,
      mode: 'delst',
      epochs: args.epochs,
      lr: LR,
      seed: SEED,
      backend: args.backend,
      out: work,
      resume,
      genePanel,
    },
    {
      onStatus: (message) => console.error(`${message} (${since()})`),
      onEpoch: (m: EpochMetrics) =>
        console.log(
          `epoch ${m.epoch}/${args.epochs}  loss ${m.loss.toFixed(4)}  contrastive ${m.contrastive.toFixed(4)}  ` +
            `cross ${m.crossEntailment.toFixed(4)}  intra ${m.intraEntailment.toFixed(4)}  c ${m.curvature?.toFixed(3)}  ` +
            `s ${m.scale.toFixed(2)}  ${m.spotsPerSecond.toFixed(1)} spots/s  ${m.seconds.toFixed(0)} s  (${since()})`,
        ),
    },
  );
  if (result.status !== 'completed') throw new Error(`training stopped: ${result.status}`);

  const manifest = await exportModel(work, target);
  const bytes =
    (await stat(path.join(target, 'weights.bin'))).size + (await stat(path.join(target, 'manifest.json'))).size;
  const summary = {
    out: target,
    epochs: result.epochs,
    steps: result.steps,
    backend: result.device,
    spotsPerSecond: Number(result.spotsPerSecond.toFixed(1)),
    megabytes: Number((bytes / 1e6).toFixed(2)),
    seconds: Math.round((Date.now() - started) / 1000),
    loss: result.metrics.map((m) => Number(m.loss.toFixed(4))),
  };
  await writeFile(
    path.join(target, 'README.txt'),
    `DELST Studio base model, made by scripts/pretrain-base.ts (npm run pretrain:base).\n\n` +
      `Trained on HER2ST ${TRAIN_SECTIONS.join(', ')} (Andersson et al., Nat Commun 12:6012, 2021), mode delst, ` +
      `${result.epochs} epochs (${result.steps} steps of ${manifest.training?.batchSize} spots), seed ${SEED}, ` +
      `on ${result.device}. Gene panel: ${manifest.genePanel?.genes.length} highly variable genes chosen on all ` +
      `${all.length} HER2ST sections. manifest.json holds the architecture, gene panel, training settings and the ` +
      `loss of every epoch; weights.bin the float32 weights. Fine-tune with: delst train SECTION... --init <this folder>\n`,
  );
  console.log(JSON.stringify(summary));
}

await main();
