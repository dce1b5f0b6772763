// Per-section expression summaries the viewer asks for: gene search, one gene over all spots (raw and
// library-size normalised), and what a spot holds. Built lazily from the SparseCounts, in O(nnz) once per section.

import type { Section } from './section.js';

export interface GeneStats {
  /** Column of the count matrix. */
  readonly index: number;
  readonly symbol: string;
  readonly id: string | null;
  /** Sum of the gene's counts over all spots of the section. */
  readonly totalCounts: number;
  /** Spots where the gene is detected (count > 0). */
  readonly spots: number;
}

export interface GeneExpression {
  readonly gene: GeneStats;
  /** Raw counts per spot, in spot order. */
  readonly raw: Float32Array;
  /** ln(1 + raw / spot total * targetSum); 0 for spots without counts. */
  readonly normalised: Float32Array;
  readonly targetSum: number;
}

export interface SpotExpression {
  readonly totalCounts: number;
  /** Genes detected (count > 0). */
  readonly nnz: number;
  /** The most expressed genes, by decreasing count (ties by symbol). */
  readonly topGenes: { readonly symbol: string; readonly count: number }[];
}

/** Ranks for gene search: a whole-name match first, then prefixes, then anything containing the query. */
const EXACT = 0;
const PREFIX = 1;
const SUBSTRING = 2;

export class SectionExpression {
  private totals: Float64Array | null = null;
  private geneTotals: Float64Array | null = null;
  private geneSpots: Int32Array | null = null;
  private searchKeys: { symbol: string; id: string }[] | null = null;
  private median: number | null = null;

  constructor(private readonly section: Section) {}

  /** Total counts per spot (library size). */
  spotTotals(): Float64Array {
    this.totals ??= this.section.counts.spotTotals();
    return this.totals;
  }

  /**
   * The library size every spot is scaled to before log1p: the median total over spots with counts (as scanpy's
   * `normalize_total` does by default), so normalised values stay on the scale of a typical spot's counts.
   */
  targetSum(): number {
    if (this.median === null) {
      const positive = Array.from(this.spotTotals()).filter((total) => total > 0);
      positive.sort((a, b) => a - b);
      const mid = positive.length >> 1;
      this.median =
        positive.length === 0 ? 1 : positive.length % 2 ? positive[mid] : (positive[mid - 1] + positive[mid]) / 2;
    }
    return this.median;
  }

  gene(index: number): GeneStats {
    const { totals, spots } = this.perGene();
    const { symbols, ids } = this.section.genes;
    return { index, symbol: symbols[index], id: ids[index], totalCounts: totals[index], spots: spots[index] };
  }

  /**
   * Genes whose symbol or id matches `query` (case-insensitive): exact matches, then prefix matches, then
   * substring matches; within each, the most expressed first. An empty query lists the most expressed genes.
   */
  searchGenes(query: string, limit: number): GeneStats[] {
    const q = query.trim().toLowerCase();
    const keys = this.keys();
    const { totals } = this.perGene();
    const hits: { index: number; rank: number }[] = [];
    for (let g = 0; g < keys.length; g++) {
      const rank = q === '' ? SUBSTRING : matchRank(keys[g], q);
      if (rank >= 0) hits.push({ index: g, rank });
    }
    const symbols = this.section.genes.symbols;
    hits.sort(
      (a, b) =>
        a.rank - b.rank ||
        totals[b.index] - totals[a.index] ||
        (symbols[a.index] < symbols[b.index] ? -1 : symbols[a.index] > symbols[b.index] ? 1 : 0),
    );
    return hits.slice(0, limit).map((hit) => this.gene(hit.index));
  }

  /** The gene named by a symbol or an id (case-insensitive; the most expressed when a symbol repeats), or -1. */
  findGene(name: string): number {
    const q = name.trim().toLowerCase();
    const keys = this.keys();
    const { totals } = this.perGene();
    let best = -1;
    for (let g = 0; g < keys.length; g++) {
      if ((keys[g].symbol === q || keys[g].id === q) && (best < 0 || totals[g] > totals[best])) best = g;
    }
    return best;
  }

  expression(gene: number): GeneExpression {
    const raw = this.section.counts.geneDense(gene);
    const totals = this.spotTotals();
    const target = this.targetSum();
    const normalised = new Float32Array(raw.length);
    for (let s = 0; s < raw.length; s++) {
      if (raw[s] > 0 && totals[s] > 0) normalised[s] = Math.log1p((raw[s] / totals[s]) * target);
    }
    return { gene: this.gene(gene), raw, normalised, targetSum: target };
  }

  spot(spot: number, top: number): SpotExpression {
    const { indices, values } = this.section.counts.spot(spot);
    const symbols = this.section.genes.symbols;
    const order = Array.from(indices.keys()).sort(
      (a, b) =>
        values[b] - values[a] ||
        (symbols[indices[a]] < symbols[indices[b]] ? -1 : symbols[indices[a]] > symbols[indices[b]] ? 1 : 0),
    );
    return {
      totalCounts: this.spotTotals()[spot],
      nnz: indices.length,
      topGenes: order.slice(0, top).map((k) => ({ symbol: symbols[indices[k]], count: values[k] })),
    };
  }

  private perGene(): { totals: Float64Array; spots: Int32Array } {
    if (!this.geneTotals || !this.geneSpots) {
      const { counts } = this.section;
      const totals = new Float64Array(counts.nGenes);
      const spots = new Int32Array(counts.nGenes);
      for (let s = 0; s < counts.nSpots; s++) {
        const { indices, values } = counts.spot(s);
        for (let k = 0; k < indices.length; k++) {
          totals[indices[k]] += values[k];
          if (values[k] > 0) spots[indices[k]]++;
        }
      }
      this.geneTotals = totals;
      this.geneSpots = spots;
    }
    return { totals: this.geneTotals, spots: this.geneSpots };
  }

  private keys(): { symbol: string; id: string }[] {
    const { symbols, ids } = this.section.genes;
    this.searchKeys ??= symbols.map((symbol, g) => ({ symbol: symbol.toLowerCase(), id: ids[g]?.toLowerCase() ?? '' }));
    return this.searchKeys;
  }
}

function matchRank(key: { symbol: string; id: string }, q: string): number {
  if (key.symbol === q || key.id === q) return EXACT;
  if (key.symbol.startsWith(q) || key.id.startsWith(q)) return PREFIX;
  if (key.symbol.includes(q) || key.id.includes(q)) return SUBSTRING;
  return -1;
}
