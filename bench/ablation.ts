// `npm run bench -- ablation [--seeds N] [--epochs N] [--sections A1,A2,B4] [--data DIR] [--k N] [--top-genes N]
// [--backend B] [--keep DIR]`: trains clip, meru and delst from scratch with the same seeds, data, gene panel and
// schedule, evaluates each, and prints one JSON table: per mode, mean ± std (sample std, n - 1) over seeds of the
// probe's balanced accuracy, macro-F1 and macro AUC and of the mean per-gene r of the kNN and ridge predictors.
//
// Evaluation per trained model (core/eval/evaluate.ts):
// * Probe on the `pathologist` column: leave one section out over the sections that have it when there are at
//   least 2; otherwise (HER2ST A1, A2, B4: only A1 is labelled) a seeded, spatially blocked split of the labelled
//   section (blocks of 4 x 4 spot spacings, whole blocks to the test part until it holds >= 30 % of the labelled
//   spots; spatialBlockSplit), the same split for every mode of a seed. The probe's numbers per seed are the mean
//   over its folds.
// * Genes: leave one section out over all the sections (50 most variable genes of the training folds, k = 50);
//   the number per seed is the mean over folds of the mean r over genes.
// Caveat: the encoders are trained (self-supervised, on image-expression pairs, no labels) on all the sections,
// the held-out ones included; only the probe and the regressors are fitted without the test fold. The default
// schedule is short (3 epochs, 2 seeds) so the run fits in ~15-20 min on 2 CPU cores: the table compares modes
// under one small budget, and the data (three sections) is small.

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BACKEND_CHOICES, initBackend, type BackendChoice } from '../core/engine/backend.js';
import { loadModel } from '../core/engine/checkpoint.js';
import { DEFAULT_MODEL_CONFIG, EMBEDDING_MODES, type EmbeddingMode } from '../core/engine/config.js';
import { selectGenePanel } from '../core/engine/gene-panel.js';
import { train } from '../core/engine/trainer.js';
import {
  crossValidateSections,
  embedSections,
  evaluateSplit,
  hasLabelColumn,
  meanStd,
  rowLabels,
  spatialBlockSplit,
  subsetRows,
  type EmbeddedSection,
  type EmbeddingSpace,
  type EvalSettings,
} from '../core/eval/evaluate.js';
import { openSections } from '../core/readers/open.js';
import { packageRoot } from '../core/resources.js';
import type { Section } from '../core/section/section.js';

interface Options {
  seeds: number;
  epochs: number;
  sections: string[];
  data: string;
  k: number;
  topGenes: number;
  labelColumn: string;
  backend: BackendChoice;
  keep: string | null;
}

function parse(args: string[]): Options {
  const opts: Options = {
    seeds: 2,
    epochs: 3,
    sections: ['A1', 'A2', 'B4'],
    data: path.resolve(packageRoot(), '../shared/data/her2st'),
    k: 50,
    topGenes: 50,
    labelColumn: 'pathologist',
    backend: 'auto',
    keep: null,
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const value = () => {
      const v = args[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const whole = (min: number) => {
      const v = Number(value());
      if (!Number.isInteger(v) || v < min) throw new Error(`${a} needs a whole number >= ${min}`);
      return v;
    };
    if (a === '--seeds') opts.seeds = whole(1);
    else if (a === '--epochs') opts.epochs = whole(1);
    else if (a === '--k') opts.k = whole(1);
    else if (a === '--top-genes') opts.topGenes = whole(1);
    else if (a === '--sections') opts.sections = value().split(',').filter(Boolean);
    else if (a === '--data') opts.data = path.resolve(value());
    else if (a === '--label-column') opts.labelColumn = value();
    else if (a === '--keep') opts.keep = path.resolve(value());
    else if (a === '--backend') {
      const b = value();
      if (!BACKEND_CHOICES.includes(b as BackendChoice)) throw new Error(`--backend: ${BACKEND_CHOICES.join(', ')}`);
      opts.backend = b as BackendChoice;
    } else throw new Error(`unknown option ${a}`);
  }
  if (opts.sections.length < 2) throw new Error('--sections: give at least 2 sections');
  return opts;
}

interface SeedScores {
  seed: number;
  balancedAccuracy: number | null;
  macroF1: number | null;
  macroAuc: number | null;
  knnMeanR: number | null;
  ridgeMeanR: number | null;
  trainSeconds: number;
  finalLoss: number | null;
}

/** Probe folds: leave one labelled section out when >= 2 are labelled, else a spatially blocked split of one. */
function probeScores(
  embedded: EmbeddedSection[],
  space: EmbeddingSpace,
  settings: EvalSettings,
  seed: number,
): { balancedAccuracy: number | null; macroF1: number | null; macroAuc: number | null; protocol: string } {
  const column = settings.labelColumn!;
  const labelled = embedded.filter((es) => hasLabelColumn(es.section, column));
  const run = { ...settings, skipGenes: true, seed };
  if (labelled.length >= 2) {
    const cv = crossValidateSections(labelled, space, run);
    return {
      balancedAccuracy: cv.summary.balancedAccuracy.mean,
      macroF1: cv.summary.macroF1.mean,
      macroAuc: cv.summary.macroAuc.mean,
      protocol: `leave-one-section-out over ${labelled.map((e) => e.name).join(', ')}`,
    };
  }
  if (labelled.length === 0) {
    return { balancedAccuracy: null, macroF1: null, macroAuc: null, protocol: `no section has '${column}'` };
  }
  const es = labelled[0];
  const split = spatialBlockSplit(es, rowLabels(es, column), { seed });
  const r = evaluateSplit([subsetRows(es, split.train)], [subsetRows(es, split.test)], space, run);
  const m = r.probe!.metrics;
  return {
    balancedAccuracy: m.balancedAccuracy,
    macroF1: m.macroF1,
    macroAuc: m.macroAuc,
    protocol:
      `spatially blocked split of ${es.name} (4 x 4 spot-spacing blocks, >= 30 % of labelled spots to test, ` +
      `seeded): ${split.train.length} train / ${split.test.length} test spots at seed ${seed}`,
  };
}

const round = (v: number | null) => (v === null ? null : Number(v.toFixed(4)));

export async function benchAblation(args: string[]): Promise<object> {
  const opts = parse(args);
  const started = Date.now();
  const backend = await initBackend(opts.backend);
  const sections: Section[] = [];
  for (const name of opts.sections) {
    const { sections: found } = await openSections(path.resolve(opts.data, name));
    sections.push(...found);
  }
  // One gene panel for every run (the trainer's default on these sections, chosen once).
  const genePanel = selectGenePanel(sections, { size: DEFAULT_MODEL_CONFIG.gene.panelSize });
  const root = opts.keep ?? (await mkdtemp(path.join(os.tmpdir(), 'delst-ablation-')));
  const settings: EvalSettings = { labelColumn: opts.labelColumn, topGenes: opts.topGenes, k: opts.k };
  const perMode: Record<string, SeedScores[]> = {};
  let protocol = '';
  try {
    for (const mode of EMBEDDING_MODES as readonly EmbeddingMode[]) {
      perMode[mode] = [];
      for (let seed = 0; seed < opts.seeds; seed++) {
        const out = path.join(root, `${mode}-seed${seed}`);
        const t0 = Date.now();
        let finalLoss: number | null = null;
        const result = await train(
          { sections, mode, epochs: opts.epochs, seed, out, backend: opts.backend, genePanel },
          {
            onEpoch: (m) => {
              finalLoss = m.loss;
              console.error(`ablation: ${mode} seed ${seed} epoch ${m.epoch}/${opts.epochs} loss ${m.loss.toFixed(4)}`);
            },
          },
        );
        const trainSeconds = (Date.now() - t0) / 1000;
        const { model, checkpoint } = await loadModel(out);
        let embedded: EmbeddedSection[];
        let space: EmbeddingSpace;
        try {
          ({ embedded, space } = await embedSections(model, checkpoint.manifest.genePanel!, sections));
        } finally {
          model.dispose();
        }
        const probe = probeScores(embedded, space, settings, seed);
        protocol = probe.protocol.replace(/ at seed \d+$/, '');
        const genes = crossValidateSections(embedded, space, { ...settings, labelColumn: null, seed });
        perMode[mode].push({
          seed,
          balancedAccuracy: probe.balancedAccuracy,
          macroF1: probe.macroF1,
          macroAuc: probe.macroAuc,
          knnMeanR: genes.summary.knnMeanR.mean,
          ridgeMeanR: genes.summary.ridgeMeanR.mean,
          trainSeconds: Number(trainSeconds.toFixed(1)),
          finalLoss: round(finalLoss),
        });
        console.error(`ablation: ${mode} seed ${seed}: ${JSON.stringify(perMode[mode].at(-1))} (${result.status})`);
      }
    }
  } finally {
    if (!opts.keep) await rm(root, { recursive: true, force: true });
  }
  const stat = (rows: SeedScores[], key: keyof SeedScores) => {
    const s = meanStd(rows.map((r) => r[key] as number | null));
    return { mean: round(s.mean), std: round(s.std), n: s.n };
  };
  const table = Object.fromEntries(
    Object.entries(perMode).map(([mode, rows]) => [
      mode,
      {
        balancedAccuracy: stat(rows, 'balancedAccuracy'),
        macroF1: stat(rows, 'macroF1'),
        macroAuc: stat(rows, 'macroAuc'),
        knnMeanR: stat(rows, 'knnMeanR'),
        ridgeMeanR: stat(rows, 'ridgeMeanR'),
        perSeed: rows.map((r) => ({
          ...r,
          balancedAccuracy: round(r.balancedAccuracy),
          macroF1: round(r.macroF1),
          macroAuc: round(r.macroAuc),
          knnMeanR: round(r.knnMeanR),
          ridgeMeanR: round(r.ridgeMeanR),
        })),
      },
    ]),
  );
  return {
    sections: sections.map((s) => s.name),
    seeds: opts.seeds,
    epochs: opts.epochs,
    backend: backend.name,
    threads: backend.threads,
    labelColumn: opts.labelColumn,
    probeProtocol: protocol,
    geneProtocol:
      `leave-one-section-out over ${sections.map((s) => s.name).join(', ')}; ${opts.topGenes} most variable genes ` +
      `of the training folds; kNN (k = ${opts.k}) on image embeddings (Lorentz distance; clip: normalised ` +
      `projections), ridge on backbone features; mean r over genes, then over folds`,
    caveat:
      'encoders trained self-supervised on all the sections (held-out folds included); small data (3 sections); ' +
      'short schedule',
    table,
    minutes: Number(((Date.now() - started) / 60000).toFixed(1)),
  };
}
