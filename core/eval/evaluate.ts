// Evaluation of a trained model on sections (issue 5, Evaluation): what `delst eval`, `delst predict` and the
// ablation bench share. Sections are embedded once (embedSections); splits and folds then only slice rows.
//
// * Linear probe: multinomial logistic regression (logistic.ts) on the frozen image backbone features (before the
//   projection head), labels from a section label column; `undetermined` spots left out unless kept.
// * Gene expression from the image alone, per gene Pearson r on the test spots (gene-prediction.ts):
//   - kNN (BLEEP-style, k neighbours, inverse-distance weights) on the image embeddings: hyperboloid space
//     components with the Lorentz geodesic distance at the model's learnt curvature (meru, delst); in clip mode, the
//     L2-normalised projections with the Euclidean distance (monotone in the cosine distance the CLIP loss uses);
//   - ridge regression from the backbone features.
// * Gene source: sections are joined on gene symbols (the genes every section involved measures; a symbol repeated
//   within a section has its columns summed). Expression is log-normalised with one shared target sum,
//   ln(1 + count / spotTotal * T), spotTotal over the spot's whole transcriptome, and T the median spot total over
//   the training spots (scanpy's normalize_total default, taken on the training side only so test data chooses
//   nothing). One T for all sections keeps train and test values on the same scale; per-section medians would not.

import { embedDataset } from '../engine/embed.js';
import { buildDataset } from '../engine/dataset.js';
import type { GenePanel } from '../engine/gene-panel.js';
import type { DelstModel } from '../engine/models/delst-model.js';
import { deriveSeed, Rng } from '../engine/random.js';
import { hasLabels, type Section } from '../section/section.js';
import {
  evaluateGenePrediction,
  euclideanDistance,
  genePredictionToJson,
  lorentzDistance,
  type GenePredictionResult,
  type GeneSource,
} from './gene-prediction.js';
import { linearProbe, probeToJson, type ProbeResult } from './logistic.js';
import type { Matrix } from './matrix.js';
import { summarise } from './metrics.js';

/** One section's in-tissue spots with their image features and embeddings, in section spot order. */
export interface EmbeddedSection {
  readonly name: string;
  readonly source: string;
  readonly section: Section;
  /** Indices into section.spots of the rows (in-tissue spots, or a subset). */
  readonly spots: Int32Array;
  /** rows x featureDim backbone image features. */
  readonly features: Matrix;
  /** rows x D image embeddings used by kNN (hyperboloid space components; clip: L2-normalised projections). */
  readonly embeddings: Matrix;
}

export interface EmbeddingSpace {
  /** The model's curvature c (curvature -c), null in clip mode. */
  readonly curvature: number | null;
  /** 'lorentz (c = ...)' or 'euclidean on normalised projections'. */
  readonly distanceName: string;
}

/** What embedSections tells as it goes, and how it is stopped. */
export interface EmbedSectionsOptions {
  readonly batchSize?: number;
  /** Before each section (done sections of total) and once at the end. */
  readonly onProgress?: (done: number, total: number, section: string) => void;
  /** After each batch: spots of the section embedded so far. */
  readonly onSpots?: (done: number, total: number, section: string) => void;
  /** Checked before each section and after each batch: once aborted, the call throws the signal's reason. */
  readonly signal?: AbortSignal;
}

/** Embeds the in-tissue spots of each section with the model's image encoder (one pass per section). */
export async function embedSections(
  model: DelstModel,
  panel: GenePanel,
  sections: readonly Section[],
  options: EmbedSectionsOptions = {},
): Promise<{ embedded: EmbeddedSection[]; space: EmbeddingSpace }> {
  const curvature = model.config.mode === 'clip' ? null : (await model.scalars()).curvature;
  const embedded: EmbeddedSection[] = [];
  for (const [i, section] of sections.entries()) {
    options.signal?.throwIfAborted();
    options.onProgress?.(i, sections.length, section.name);
    const dataset = await buildDataset([section], panel, { inputSize: model.config.image.inputSize });
    const onBatch = (done: number, total: number) => {
      options.signal?.throwIfAborted();
      options.onSpots?.(done, total, section.name);
    };
    onBatch(0, dataset.size);
    const e = await embedDataset(model, dataset, 'image', { batchSize: options.batchSize, onProgress: onBatch });
    const space = Float64Array.from(e.space);
    if (curvature === null) {
      for (let r = 0; r < e.count; r++) {
        let s = 0;
        for (let j = 0; j < e.dim; j++) s += space[r * e.dim + j] ** 2;
        const norm = Math.sqrt(s) || 1;
        for (let j = 0; j < e.dim; j++) space[r * e.dim + j] /= norm;
      }
    }
    embedded.push({
      name: section.name,
      source: section.source,
      section,
      spots: Int32Array.from(dataset.spotIndex),
      features: { rows: e.count, cols: e.featureDim, data: Float64Array.from(e.features) },
      embeddings: { rows: e.count, cols: e.dim, data: space },
    });
  }
  options.onProgress?.(sections.length, sections.length, '');
  return {
    embedded,
    space: {
      curvature,
      distanceName:
        curvature === null ? 'euclidean on normalised projections' : `lorentz (c = ${curvature.toPrecision(4)})`,
    },
  };
}

/** The rows `rows` (indices into es's rows) of an embedded section. */
export function subsetRows(es: EmbeddedSection, rows: ArrayLike<number>): EmbeddedSection {
  const take = (m: Matrix): Matrix => {
    const data = new Float64Array(rows.length * m.cols);
    for (let r = 0; r < rows.length; r++)
      data.set(m.data.subarray(rows[r] * m.cols, (rows[r] + 1) * m.cols), r * m.cols);
    return { rows: rows.length, cols: m.cols, data };
  };
  return {
    ...es,
    spots: Int32Array.from(rows, (r) => es.spots[r]),
    features: take(es.features),
    embeddings: take(es.embeddings),
  };
}

/** Whether the section has label column `column` with at least one label. */
export function hasLabelColumn(section: Section, column: string): boolean {
  const values = section.labels.get(column);
  return values !== undefined && hasLabels(values);
}

/** The labels of the rows (null where missing or where the section lacks the column). */
export function rowLabels(es: EmbeddedSection, column: string): (string | null)[] {
  const values = es.section.labels.get(column);
  return Array.from(es.spots, (s) => values?.[s] ?? null);
}

/** The rows of several sections' matrices, one below the other. */
export function stack(parts: readonly EmbeddedSection[], pick: (es: EmbeddedSection) => Matrix): Matrix {
  const cols = pick(parts[0]).cols;
  const rows = parts.reduce((n, p) => n + pick(p).rows, 0);
  const data = new Float64Array(rows * cols);
  let offset = 0;
  for (const p of parts) {
    data.set(pick(p).data, offset);
    offset += pick(p).data.length;
  }
  return { rows, cols, data };
}

// ---- gene source -------------------------------------------------------------------------------------------------

function median(values: number[]): number {
  if (values.length === 0) return 1;
  const v = [...values].sort((a, b) => a - b);
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

export interface SharedGeneSource extends GeneSource {
  /** The shared target sum T of ln(1 + count / total * T). */
  readonly targetSum: number;
}

/**
 * Log-normalised expression over `train` and `test` rows, joined on gene symbols (see the header): the genes every
 * section measures, in the first section's column order.
 */
export function sharedGeneSource(
  train: readonly EmbeddedSection[],
  test: readonly EmbeddedSection[],
): SharedGeneSource {
  const all = [...train, ...test];
  const distinct = [...new Set(all.map((es) => es.section))];
  const columns = new Map<Section, Map<string, number[]>>();
  for (const section of distinct) {
    const bySymbol = new Map<string, number[]>();
    section.genes.symbols.forEach((symbol, g) => {
      const list = bySymbol.get(symbol);
      if (list) list.push(g);
      else bySymbol.set(symbol, [g]);
    });
    columns.set(section, bySymbol);
  }
  const first = columns.get(distinct[0])!;
  const genes = [...first.keys()].filter((symbol) => distinct.every((s) => columns.get(s)!.has(symbol)));
  const totals = new Map(distinct.map((s) => [s, s.counts.spotTotals()] as const));
  const targetSum = median(
    train.flatMap((es) => Array.from(es.spots, (s) => totals.get(es.section)![s])).filter((t) => t > 0),
  );
  const values = (parts: readonly EmbeddedSection[], gene: number) => {
    const symbol = genes[gene];
    const out = new Float64Array(parts.reduce((n, p) => n + p.spots.length, 0));
    let offset = 0;
    for (const es of parts) {
      const cols = columns.get(es.section)!.get(symbol)!;
      const dense = cols.map((g) => es.section.counts.geneDense(g));
      const total = totals.get(es.section)!;
      es.spots.forEach((s, r) => {
        let count = 0;
        for (const d of dense) count += d[s];
        out[offset + r] = count > 0 && total[s] > 0 ? Math.log1p((count / total[s]) * targetSum) : 0;
      });
      offset += es.spots.length;
    }
    return out;
  };
  return { genes, targetSum, train: (g) => values(train, g), test: (g) => values(test, g) };
}

// ---- one split ---------------------------------------------------------------------------------------------------

export interface EvalSettings {
  /** Label column of the probe; null: genes only. */
  readonly labelColumn: string | null;
  /** Keep spots labelled `undetermined` (default: left out). */
  readonly keepUndetermined?: boolean;
  /** Most variable genes (chosen on the training spots), default 50. */
  readonly topGenes?: number;
  readonly genes?: readonly string[];
  /** kNN neighbours, default 50. */
  readonly k?: number;
  readonly seed?: number;
  /** Skip the gene evaluation. */
  readonly skipGenes?: boolean;
}

export interface SplitResult {
  readonly train: string[];
  readonly test: string[];
  readonly probe: ProbeResult | null;
  readonly genes: (GenePredictionResult & { targetSum: number; genesJoined: number }) | null;
}

/** kNN results from one run and ridge results from another, over the same gene selection. */
function mergePredictors(knnRun: GenePredictionResult, ridgeRun: GenePredictionResult): GenePredictionResult {
  const genes = knnRun.genes.map((g, i) => ({ ...g, ridge: ridgeRun.genes[i].ridge }));
  const mv = genes.filter((g) => g.mostVariable);
  return {
    ...knnRun,
    genes,
    summary: { knn: knnRun.summary.knn, ridge: ridgeRun.summary.ridge },
    summaryMostVariable: {
      knn: summarise(mv.map((g) => g.knn)),
      ridge: summarise(mv.map((g) => g.ridge)),
    },
    undefinedCorrelation: { knn: knnRun.undefinedCorrelation.knn, ridge: ridgeRun.undefinedCorrelation.ridge },
    ridge: ridgeRun.ridge,
    predicted: { knn: knnRun.predicted.knn, ridge: ridgeRun.predicted.ridge },
  };
}

/** Probe and gene prediction with `train` rows as training/reference spots and `test` rows as test spots. */
export function evaluateSplit(
  train: readonly EmbeddedSection[],
  test: readonly EmbeddedSection[],
  space: EmbeddingSpace,
  settings: EvalSettings,
): SplitResult {
  if (train.length === 0 || test.length === 0) throw new Error('give training and test sections');
  const seed = settings.seed ?? 0;
  let probe: ProbeResult | null = null;
  if (settings.labelColumn !== null) {
    const column = settings.labelColumn;
    probe = linearProbe({
      trainX: stack(train, (es) => es.features),
      trainY: train.flatMap((es) => rowLabels(es, column)),
      testX: stack(test, (es) => es.features),
      testY: test.flatMap((es) => rowLabels(es, column)),
      dropLabels: settings.keepUndetermined ? [] : ['undetermined'],
      seed,
    });
  }
  let genes: SplitResult['genes'] = null;
  if (!settings.skipGenes) {
    const source = sharedGeneSource(train, test);
    const common = { source, top: settings.topGenes ?? 50, named: settings.genes, seed };
    const knnRun = evaluateGenePrediction({
      ...common,
      trainX: stack(train, (es) => es.embeddings),
      testX: stack(test, (es) => es.embeddings),
      knn: {
        k: settings.k ?? 50,
        distance: space.curvature === null ? euclideanDistance : lorentzDistance(space.curvature),
      },
      distanceName: space.distanceName,
      only: 'knn',
    });
    const ridgeRun = evaluateGenePrediction({
      ...common,
      trainX: stack(train, (es) => es.features),
      testX: stack(test, (es) => es.features),
      only: 'ridge',
    });
    genes = { ...mergePredictors(knnRun, ridgeRun), targetSum: source.targetSum, genesJoined: source.genes.length };
  }
  return { train: train.map((es) => es.name), test: test.map((es) => es.name), probe, genes };
}

/** A split result as plain JSON (no matrices; probe predictions left out: `delst predict` writes those). */
export function splitToJson(result: SplitResult) {
  const probe = result.probe ? probeToJson(result.probe) : null;
  const { predictions: _predictions, ...probeJson } = probe ?? { predictions: null };
  const genes = result.genes ? genePredictionToJson(result.genes) : null;
  return {
    train: result.train,
    test: result.test,
    probe: probe ? probeJson : null,
    genes: genes
      ? {
          summary: genes.summary,
          summaryMostVariable: genes.summaryMostVariable,
          knn: genes.knn,
          ridge: genes.ridge,
          targetSum: result.genes!.targetSum,
          genesJoined: result.genes!.genesJoined,
          nTrain: genes.nTrain,
          nTest: genes.nTest,
          unknownGenes: genes.unknownGenes,
          undefinedCorrelation: genes.undefinedCorrelation,
          perGene: genes.genes.map((g) => ({
            gene: g.name,
            mostVariable: g.mostVariable,
            named: g.named,
            variance: g.variance,
            knn: g.knn,
            ridge: g.ridge,
          })),
        }
      : null,
  };
}

// ---- folds -------------------------------------------------------------------------------------------------------

/** Mean and sample standard deviation (n - 1; null for fewer than 2 values) of the non-null values. */
export function meanStd(values: readonly (number | null)[]): { mean: number | null; std: number | null; n: number } {
  const v = values.filter((x): x is number => x !== null && Number.isFinite(x));
  const n = v.length;
  if (n === 0) return { mean: null, std: null, n };
  const mean = v.reduce((a, b) => a + b, 0) / n;
  const std = n < 2 ? null : Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1));
  return { mean, std, n };
}

export interface CvResult {
  readonly folds: SplitResult[];
  readonly summary: ReturnType<typeof cvSummary>;
}

/** Means and standard deviations over folds of the headline numbers. */
export function cvSummary(folds: readonly SplitResult[]) {
  const probes = folds.map((f) => f.probe).filter((p): p is ProbeResult => p !== null);
  const genes = folds.map((f) => f.genes).filter((g) => g !== null);
  return {
    probeFolds: probes.length,
    geneFolds: genes.length,
    accuracy: meanStd(probes.map((p) => p.metrics.accuracy)),
    balancedAccuracy: meanStd(probes.map((p) => p.metrics.balancedAccuracy)),
    macroF1: meanStd(probes.map((p) => p.metrics.macroF1)),
    macroAuc: meanStd(probes.map((p) => p.metrics.macroAuc)),
    knnMeanR: meanStd(genes.map((g) => g.summary.knn.mean)),
    ridgeMeanR: meanStd(genes.map((g) => g.summary.ridge.mean)),
  };
}

/**
 * Leave one section out over `sections`: each section is the test fold once, the others train. The probe runs on
 * folds whose test section has the label column (training on the labelled spots of the others, which must include
 * at least one labelled section); genes on every fold.
 */
export function crossValidateSections(
  sections: readonly EmbeddedSection[],
  space: EmbeddingSpace,
  settings: EvalSettings,
): CvResult {
  if (sections.length < 2) throw new Error('leave-one-section-out needs at least 2 sections');
  const column = settings.labelColumn;
  const folds: SplitResult[] = [];
  for (const [i, test] of sections.entries()) {
    const train = sections.filter((_, j) => j !== i);
    const labelled = column !== null && hasLabelColumn(test.section, column);
    const probeHere = labelled && train.some((es) => hasLabelColumn(es.section, column!));
    if (!probeHere && settings.skipGenes) continue;
    folds.push(evaluateSplit(train, [test], space, { ...settings, labelColumn: probeHere ? column : null }));
  }
  return { folds, summary: cvSummary(folds) };
}

/**
 * A seeded, spatially blocked split of one section's labelled rows into train and test: the section is cut into
 * square blocks of `blockSpots` spot spacings (in full-resolution pixels when the pixel size is known, else in array
 * units), blocks are shuffled by the seed, and whole blocks go to the test part until it holds at least
 * `testFraction` of the labelled rows. Neighbouring spots look alike, so a random spot split would leak; whole
 * blocks keep most test spots away from training spots. Unlabelled rows go with their block.
 */
export function spatialBlockSplit(
  es: EmbeddedSection,
  labels: readonly (string | null)[],
  options: { seed: number; testFraction?: number; blockSpots?: number },
): { train: number[]; test: number[] } {
  const fraction = options.testFraction ?? 0.3;
  const section = es.section;
  const spacingPx = section.micronsPerPixel ? section.spotSpacingMicrons / section.micronsPerPixel : null;
  const side = (options.blockSpots ?? 4) * (spacingPx ?? 1);
  const px = (s: number) => (spacingPx ? section.spots.x[s] : section.spots.arrayCol[s]);
  const py = (s: number) => (spacingPx ? section.spots.y[s] : section.spots.arrayRow[s]);
  const blocks = new Map<string, number[]>();
  es.spots.forEach((s, r) => {
    const key = `${Math.floor(px(s) / side)},${Math.floor(py(s) / side)}`;
    const list = blocks.get(key);
    if (list) list.push(r);
    else blocks.set(key, [r]);
  });
  const keys = [...blocks.keys()].sort();
  new Rng(deriveSeed(options.seed, 'spatial-block-split')).shuffle(keys);
  const labelled = labels.filter((l) => l !== null).length;
  const testRows: number[] = [];
  let testLabelled = 0;
  for (const key of keys) {
    if (testLabelled >= fraction * labelled) break;
    for (const r of blocks.get(key)!) {
      testRows.push(r);
      if (labels[r] !== null) testLabelled++;
    }
  }
  const isTest = new Set(testRows);
  const train = Array.from({ length: es.spots.length }, (_, r) => r).filter((r) => !isTest.has(r));
  return { train, test: testRows.sort((a, b) => a - b) };
}
