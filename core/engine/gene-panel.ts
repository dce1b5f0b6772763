// The gene side of the data: which genes the model reads (the panel), how counts become its input, and nnz.
//
// Panel choice (one method, scanpy's `highly_variable_genes(flavor='seurat', n_top_genes=N, batch_key=section)`):
//   1. candidates: gene symbols measured in every training section (a gene missing from a section has unknown
//      expression there, not zero);
//   2. per section, on in-tissue spots: normalised counts x = count * 1e4 / library size; per gene the mean and
//      the dispersion var/mean; genes binned into 20 equal-width bins of log1p(mean); normalised dispersion =
//      (log dispersion - bin mean) / bin std (a bin of one gene gives 1, as scanpy);
//   3. rank genes by the number of sections where they are among the top N, then by the mean normalised
//      dispersion over sections, then by symbol; keep the first N.
// Per-section ranking keeps genes that merely differ between sections (depth, batch) from filling the panel.
//
// Model input: log1p(count * targetSum / library size), the library size over the whole transcriptome, optionally
// standardised per gene with the training mean and std stored in the panel. Genes are matched by symbol; a symbol
// that names several columns in a section (several Ensembl ids) gets their sum.

import type { Section } from '../section/section.js';

export const GENE_PANEL_VERSION = 1;
const DEFAULT_PANEL_SIZE = 1000;
const DEFAULT_TARGET_SUM = 1e4;
const DISPERSION_BINS = 20;
/** Floor on a gene's std when standardising: a gene constant on the training spots stays finite. */
const MIN_STD = 1e-6;

/** JSON-serialisable; saved with the model so that fine-tuning and embedding read genes the same way. */
export interface GenePanel {
  readonly version: number;
  /** Gene symbols in model-input order. */
  readonly genes: readonly string[];
  readonly targetSum: number;
  /** Whether the model input is standardised with `mean` and `std`. */
  readonly standardize: boolean;
  /** Per gene, over the training spots: mean and std of log1p(normalised counts). */
  readonly mean: readonly number[];
  readonly std: readonly number[];
  readonly selection: {
    readonly method: 'seurat-dispersion-per-section' | 'fixed-list';
    readonly sections: readonly string[];
    /** Genes measured in every section (the candidates). */
    readonly candidates: number;
  };
}

export interface PanelOptions {
  /** Genes to keep (default 1000); fewer where fewer candidates exist. */
  readonly size?: number;
  readonly targetSum?: number;
  readonly standardize?: boolean;
  /** The spots of each section to use (default: in-tissue spots). */
  readonly spots?: (section: Section) => ArrayLike<number>;
}

/** Chooses highly variable genes on the training sections (see the file header) and their statistics. */
export function selectGenePanel(sections: readonly Section[], options: PanelOptions = {}): GenePanel {
  if (sections.length === 0) throw new Error('choosing a gene panel needs at least one section');
  const size = options.size ?? DEFAULT_PANEL_SIZE;
  const spotsOf = options.spots ?? inTissueSpots;
  const candidates = sharedSymbols(sections);
  const perSection = sections.map((s) => normalisedDispersion(s, candidates, spotsOf(s)));
  const genes = rankGenes(candidates, perSection, size);
  return panelWithStats(genes, sections, options, 'seurat-dispersion-per-section', candidates.length);
}

/** A panel of given genes (a marker list, or an existing model's panel re-used), statistics from `sections`. */
export function panelFromGenes(
  genes: readonly string[],
  sections: readonly Section[],
  options: PanelOptions = {},
): GenePanel {
  if (new Set(genes).size !== genes.length) throw new Error('the gene list names a gene twice');
  return panelWithStats(genes, sections, options, 'fixed-list', sharedSymbols(sections).length);
}

/**
 * Model input for `spots` of a section (default: in-tissue spots): spots x panel, row-major, log1p of counts per
 * targetSum, standardised if the panel says so. Panel genes the section lacks are 0 (see `panelCoverage`).
 */
export function expressionMatrix(section: Section, panel: GenePanel, spots?: ArrayLike<number>): Float32Array {
  const rows = spots ?? inTissueSpots(section);
  const logNormal = logNormalised(section, panel.genes, panel.targetSum, rows);
  if (panel.standardize) standardise(logNormal, panel);
  return logNormal;
}

/** Which panel genes a section has: fine-tuning on data without some genes should say so. */
export function panelCoverage(section: Section, panel: GenePanel): { found: number; missing: string[] } {
  const columns = symbolColumns(section);
  const missing = panel.genes.filter((g) => !columns.has(g));
  return { found: panel.genes.length - missing.length, missing };
}

/**
 * Number of genes with a raw count > 0 per spot, over the whole measured transcriptome (default) or over the
 * given genes only.
 */
export function spotNnz(section: Section, spots?: ArrayLike<number>, genes?: readonly string[]): Int32Array {
  const rows = spots ?? inTissueSpots(section);
  const only = genes ? geneMask(section, genes) : null;
  const out = new Int32Array(rows.length);
  for (let r = 0; r < rows.length; r++) {
    const { indices, values } = section.counts.spot(rows[r]);
    let n = 0;
    for (let k = 0; k < values.length; k++) if (values[k] > 0 && (!only || only[indices[k]])) n++;
    out[r] = n;
  }
  return out;
}

/**
 * Percentile rank of each value within the array, in [0, 1]: (rank among the sorted values, ties given their
 * average rank) / (n - 1); a single value gets 0.5. Used per section, so nnz levels compare across depths.
 */
export function percentileRank(values: ArrayLike<number>): Float32Array {
  const n = values.length;
  const out = new Float32Array(n);
  if (n === 1) out[0] = 0.5;
  if (n <= 1) return out;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => values[a] - values[b]);
  for (let start = 0; start < n;) {
    let end = start + 1;
    while (end < n && values[order[end]] === values[order[start]]) end++;
    const rank = (start + end - 1) / 2 / (n - 1);
    for (let k = start; k < end; k++) out[order[k]] = rank;
    start = end;
  }
  return out;
}

export function inTissueSpots(section: Section): Int32Array {
  const { inTissue } = section.spots;
  const out: number[] = [];
  for (let i = 0; i < inTissue.length; i++) if (inTissue[i]) out.push(i);
  return Int32Array.from(out);
}

/** Checks a panel read from a manifest. */
export function validateGenePanel(value: unknown): GenePanel {
  const panel = value as GenePanel;
  const fail = (what: string) => {
    throw new Error(`gene panel: ${what}`);
  };
  if (typeof value !== 'object' || value === null) fail('not an object');
  if (panel.version !== GENE_PANEL_VERSION) fail(`version ${panel.version} is not ${GENE_PANEL_VERSION}`);
  if (!Array.isArray(panel.genes) || !panel.genes.every((g) => typeof g === 'string')) fail('genes must be strings');
  const n = panel.genes.length;
  for (const key of ['mean', 'std'] as const) {
    const list = panel[key];
    if (!Array.isArray(list) || list.length !== n || !list.every(Number.isFinite))
      fail(`${key} must hold ${n} numbers`);
  }
  if (!(panel.targetSum > 0)) fail('targetSum must be positive');
  if (typeof panel.standardize !== 'boolean') fail('standardize must be true or false');
  return panel;
}

// ---- panel statistics -------------------------------------------------------------------------------------------

function panelWithStats(
  genes: readonly string[],
  sections: readonly Section[],
  options: PanelOptions,
  method: GenePanel['selection']['method'],
  candidates: number,
): GenePanel {
  const targetSum = options.targetSum ?? DEFAULT_TARGET_SUM;
  const spotsOf = options.spots ?? inTissueSpots;
  const sum = new Float64Array(genes.length);
  const sumSq = new Float64Array(genes.length);
  let count = 0;
  for (const section of sections) {
    const spots = spotsOf(section);
    const x = logNormalised(section, genes, targetSum, spots);
    for (let k = 0; k < x.length; k++) {
      const j = k % genes.length;
      sum[j] += x[k];
      sumSq[j] += x[k] * x[k];
    }
    count += spots.length;
  }
  if (count === 0) throw new Error('the training sections have no in-tissue spots');
  const mean = Array.from(sum, (s) => s / count);
  const std = Array.from(sumSq, (s, j) => Math.sqrt(Math.max(0, s / count - mean[j] ** 2)));
  return {
    version: GENE_PANEL_VERSION,
    genes: [...genes],
    targetSum,
    standardize: options.standardize ?? false,
    mean,
    std,
    selection: { method, sections: sections.map((s) => s.name), candidates },
  };
}

function standardise(x: Float32Array, panel: GenePanel): void {
  const n = panel.genes.length;
  const scale = panel.std.map((s) => 1 / Math.max(s, MIN_STD));
  for (let k = 0; k < x.length; k++) {
    const j = k % n;
    x[k] = (x[k] - panel.mean[j]) * scale[j];
  }
}

/** log1p(count * targetSum / library size) for `genes` at `spots`, spots x genes, via the gene-major index. */
function logNormalised(
  section: Section,
  genes: readonly string[],
  targetSum: number,
  spots: ArrayLike<number>,
): Float32Array {
  const raw = rawPanelCounts(section, genes, spots);
  const totals = section.counts.spotTotals();
  const n = genes.length;
  for (let r = 0; r < spots.length; r++) {
    const factor = totals[spots[r]] > 0 ? targetSum / totals[spots[r]] : 0;
    for (let k = r * n; k < (r + 1) * n; k++) if (raw[k] > 0) raw[k] = Math.log1p(raw[k] * factor);
  }
  return raw;
}

/** Raw counts of `genes` (by symbol, duplicates summed) at `spots`, spots x genes. */
function rawPanelCounts(section: Section, genes: readonly string[], spots: ArrayLike<number>): Float32Array {
  const rowOf = spotRows(section, spots);
  const columns = symbolColumns(section);
  const n = genes.length;
  const out = new Float32Array(spots.length * n);
  genes.forEach((gene, j) => {
    for (const column of columns.get(gene) ?? []) {
      const { indices, values } = section.counts.gene(column);
      for (let k = 0; k < indices.length; k++) {
        const r = rowOf[indices[k]];
        if (r >= 0) out[r * n + j] += values[k];
      }
    }
  });
  return out;
}

/** Section spot index -> row in the output (-1: not asked for). */
function spotRows(section: Section, spots: ArrayLike<number>): Int32Array {
  const rowOf = new Int32Array(section.counts.nSpots).fill(-1);
  for (let r = 0; r < spots.length; r++) {
    const s = spots[r];
    if (!Number.isInteger(s) || s < 0 || s >= rowOf.length) throw new RangeError(`no spot ${s} in ${section.name}`);
    rowOf[s] = r;
  }
  return rowOf;
}

const columnCache = new WeakMap<Section, Map<string, number[]>>();

/** Symbol -> count-matrix columns, cached per section. */
function symbolColumns(section: Section): Map<string, number[]> {
  let columns = columnCache.get(section);
  if (!columns) {
    columns = new Map();
    section.genes.symbols.forEach((symbol, column) => {
      const list = columns!.get(symbol);
      if (list) list.push(column);
      else columns!.set(symbol, [column]);
    });
    columnCache.set(section, columns);
  }
  return columns;
}

function geneMask(section: Section, genes: readonly string[]): Uint8Array {
  const mask = new Uint8Array(section.counts.nGenes);
  const columns = symbolColumns(section);
  for (const gene of genes) for (const column of columns.get(gene) ?? []) mask[column] = 1;
  return mask;
}

// ---- highly variable genes --------------------------------------------------------------------------------------

/** Symbols measured in every section, sorted (a stable candidate order). */
function sharedSymbols(sections: readonly Section[]): string[] {
  let shared = new Set(sections[0].genes.symbols);
  for (const section of sections.slice(1)) {
    const symbols = new Set(section.genes.symbols);
    shared = new Set([...shared].filter((g) => symbols.has(g)));
  }
  return [...shared].sort();
}

/** scanpy 'seurat' normalised dispersion of each candidate on one section's spots; NaN where undefined. */
function normalisedDispersion(section: Section, candidates: readonly string[], spots: ArrayLike<number>): Float64Array {
  const { means, dispersions } = meanAndDispersion(section, candidates, spots);
  const bins = binByMean(means);
  const stats = binStats(bins, dispersions);
  return Float64Array.from(dispersions, (d, g) => {
    const { mean, std } = stats[bins[g]];
    return Number.isNaN(d) ? NaN : (d - mean) / std;
  });
}

/** log1p(mean) and log(var / mean) of normalised counts per candidate (NaN dispersion where var = 0). */
function meanAndDispersion(section: Section, candidates: readonly string[], spots: ArrayLike<number>) {
  const n = spots.length;
  if (n < 2) throw new Error(`${section.name}: choosing genes needs at least 2 in-tissue spots`);
  const rowOf = spotRows(section, spots);
  const totals = section.counts.spotTotals();
  const columns = symbolColumns(section);
  const perSpot = new Float64Array(n);
  const means = new Float64Array(candidates.length);
  const dispersions = new Float64Array(candidates.length);
  candidates.forEach((gene, g) => {
    perSpot.fill(0);
    for (const column of columns.get(gene) ?? []) {
      const { indices, values } = section.counts.gene(column);
      for (let k = 0; k < indices.length; k++) {
        const r = rowOf[indices[k]];
        if (r >= 0 && totals[indices[k]] > 0) perSpot[r] += (values[k] * DEFAULT_TARGET_SUM) / totals[indices[k]];
      }
    }
    let sum = 0;
    for (let r = 0; r < n; r++) sum += perSpot[r];
    const mean = sum / n;
    let ss = 0;
    for (let r = 0; r < n; r++) ss += (perSpot[r] - mean) ** 2;
    const variance = ss / (n - 1);
    const dispersion = variance / Math.max(mean, 1e-12);
    means[g] = Math.log1p(mean);
    dispersions[g] = dispersion > 0 ? Math.log(dispersion) : NaN;
  });
  return { means, dispersions };
}

/** Bin index of each gene: 20 equal-width bins over [min, max] of log1p(mean), as pandas.cut. */
function binByMean(means: Float64Array): Int32Array {
  let low = Infinity;
  let high = -Infinity;
  for (const m of means) {
    low = Math.min(low, m);
    high = Math.max(high, m);
  }
  const width = (high - low) / DISPERSION_BINS;
  return Int32Array.from(means, (m) => (width > 0 ? Math.min(DISPERSION_BINS - 1, Math.floor((m - low) / width)) : 0));
}

/** Mean and sample std of the defined dispersions per bin; a one-gene bin gets mean 0, std = its value (scanpy). */
function binStats(bins: Int32Array, dispersions: Float64Array): { mean: number; std: number }[] {
  const members: number[][] = Array.from({ length: DISPERSION_BINS }, () => []);
  dispersions.forEach((d, g) => {
    if (!Number.isNaN(d)) members[bins[g]].push(d);
  });
  return members.map((values) => {
    if (values.length === 1) return { mean: 0, std: values[0] };
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const std = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / (values.length - 1));
    return { mean, std };
  });
}

/** Ranks by (#sections with the gene in their top N, mean normalised dispersion, symbol) and keeps N. */
function rankGenes(candidates: readonly string[], perSection: Float64Array[], size: number): string[] {
  const inTop = new Int32Array(candidates.length);
  for (const scores of perSection) {
    const defined = candidates.map((_, g) => g).filter((g) => Number.isFinite(scores[g]));
    defined.sort((a, b) => scores[b] - scores[a] || a - b);
    for (const g of defined.slice(0, size)) inTop[g]++;
  }
  const meanScore = candidates.map((_, g) => {
    const defined = perSection.map((s) => s[g]).filter(Number.isFinite);
    return defined.length > 0 ? defined.reduce((a, b) => a + b, 0) / defined.length : -Infinity;
  });
  const order = candidates
    .map((_, g) => g)
    .filter((g) => meanScore[g] > -Infinity)
    .sort((a, b) => inTop[b] - inTop[a] || meanScore[b] - meanScore[a] || (candidates[a] < candidates[b] ? -1 : 1));
  return order.slice(0, size).map((g) => candidates[g]);
}
