// The evaluation a training run in the Studio ends with (issue 5, Training in the app): how far a new library model
// can be trusted, on held-out spots of the sections it was trained on, with the protocol of `delst eval`
// (evaluate.ts): a linear probe on the frozen image features and kNN gene expression in the image embedding space.
// * Two or more sections with the label column: leave one section out over the chosen sections (the probe on folds
//   whose test section is labelled, genes on every fold).
// * One labelled section: a seeded spatial block split of it (30 % of its labelled spots in whole blocks are the
//   test part); the other chosen sections join the training part.
// Genes: kNN only (k = 50, the model's distance), over the 50 most variable genes of each fold's training spots;
// ridge is left to `delst eval` (its alpha search would double the time).
// The numbers are means over folds. On the training sections themselves they say how well the features separate
// these classes in unseen places, not how the model does on another patient.

import type { GenePanel } from '../engine/gene-panel.js';
import type { DelstModel } from '../engine/models/delst-model.js';
import type { Section } from '../section/section.js';
import type { ModelEvaluation } from '../api/api.js';
import {
  embedSections,
  evaluateSplit,
  hasLabelColumn,
  meanStd,
  rowLabels,
  sharedGeneSource,
  spatialBlockSplit,
  stack,
  subsetRows,
  type EmbeddedSection,
  type EmbeddingSpace,
} from './evaluate.js';
import { euclideanDistance, evaluateGenePrediction, lorentzDistance } from './gene-prediction.js';
import type { ProbeResult } from './logistic.js';

export type HeldOutMetrics = Omit<ModelEvaluation, 'seconds' | 'evaluatedAt' | 'error'>;

const GENES = 50;
const K = 50;
const UNDETERMINED = 'undetermined';

interface Fold {
  readonly train: EmbeddedSection[];
  readonly test: EmbeddedSection[];
}

/** Mean Pearson r of kNN expression (log-normalised, evaluate.ts's shared target sum) over the most variable genes. */
function knnMeanR(fold: Fold, space: EmbeddingSpace): { mean: number | null; genes: number } {
  const trainX = stack(fold.train, (es) => es.embeddings);
  const { summaryMostVariable } = evaluateGenePrediction({
    source: sharedGeneSource(fold.train, fold.test),
    top: GENES,
    trainX,
    testX: stack(fold.test, (es) => es.embeddings),
    knn: {
      k: Math.min(K, trainX.rows),
      distance: space.curvature === null ? euclideanDistance : lorentzDistance(space.curvature),
    },
    only: 'knn',
  });
  return { mean: summaryMostVariable.knn.mean, genes: summaryMostVariable.knn.n };
}

/** The probe of a fold (its test part labelled, and its training part), else null. */
function probe(fold: Fold, space: EmbeddingSpace, labelColumn: string): ProbeResult | null {
  const labelled = (list: EmbeddedSection[]) => list.some((es) => rowLabels(es, labelColumn).some((l) => l !== null));
  if (!labelled(fold.train) || !labelled(fold.test)) return null;
  return evaluateSplit(fold.train, fold.test, space, { labelColumn, skipGenes: true }).probe;
}

/** Headline numbers over folds: probe metrics over the probe folds, the kNN mean r over all folds. */
function summary(
  labelColumn: string,
  protocol: ModelEvaluation['protocol'],
  folds: readonly Fold[],
  space: EmbeddingSpace,
): HeldOutMetrics {
  const probes = folds.flatMap((f) => probe(f, space, labelColumn) ?? []);
  const genes = folds.map((f) => knnMeanR(f, space));
  return {
    labelColumn,
    protocol,
    folds: probes.length,
    testSpots: probes.reduce((n, p) => n + p.nTest, 0),
    accuracy: meanStd(probes.map((p) => p.metrics.accuracy)).mean,
    balancedAccuracy: meanStd(probes.map((p) => p.metrics.balancedAccuracy)).mean,
    macroF1: meanStd(probes.map((p) => p.metrics.macroF1)).mean,
    knnMeanR: meanStd(genes.map((g) => g.mean)).mean,
    genes: genes[0]?.genes ?? 0,
  };
}

/** Held-out metrics of `model` on `sections` (see the header); an error when no section has the label column. */
export async function evaluateOnTrainingSections(
  model: DelstModel,
  panel: GenePanel,
  sections: readonly Section[],
  labelColumn: string,
  options: { seed?: number; onStatus?: (message: string) => void } = {},
): Promise<HeldOutMetrics> {
  const labelled = sections.filter((s) => hasLabelColumn(s, labelColumn));
  if (labelled.length === 0) {
    throw new Error(`label column '${labelColumn}' missing in ${sections.map((s) => s.name).join(', ')}`);
  }
  const { embedded, space } = await embedSections(model, panel, sections, {
    onProgress: (done, total, name) => {
      if (done < total) options.onStatus?.(`evaluating: embedding ${name} (${done + 1}/${total})`);
    },
  });
  options.onStatus?.('evaluating: linear probe and gene kNN');
  if (labelled.length >= 2) {
    const folds = embedded.map((test, i) => ({ train: embedded.filter((_, j) => j !== i), test: [test] }));
    return summary(labelColumn, 'leave-one-section-out', folds, space);
  }
  const at = sections.indexOf(labelled[0]);
  const es = embedded[at];
  const labels = rowLabels(es, labelColumn).map((l) => (l === UNDETERMINED ? null : l));
  const split = spatialBlockSplit(es, labels, { seed: options.seed ?? 0 });
  const train = [subsetRows(es, split.train), ...embedded.filter((_, i) => i !== at)];
  return summary(labelColumn, 'spatial-blocks', [{ train, test: [subsetRows(es, split.test)] }], space);
}
