// Sparse spots x genes count matrix with fast access both ways.
// Files store it spot-major (10x `.h5` is CSC over features x barcodes, i.e. one chunk per spot; h5ad X is
// usually CSR over spots). Drawing one gene over a slide needs gene-major access, so a transposed index is built
// once, on first use, in O(nnz).

export interface SparseVector {
  /** Column (gene or spot) indices, increasing. */
  readonly indices: Int32Array;
  readonly values: Float32Array;
}

/** A SparseCounts as plain typed arrays, for postMessage (see toTransferable). */
export interface TransferableCounts {
  readonly nSpots: number;
  readonly nGenes: number;
  readonly indptr: Float64Array;
  readonly geneIndex: Int32Array;
  readonly data: Float32Array;
}

export class SparseCounts {
  readonly nSpots: number;
  readonly nGenes: number;
  /** CSR over spots: row i holds data[indptr[i] .. indptr[i+1]). */
  private readonly indptr: Float64Array;
  private readonly geneIndex: Int32Array;
  private readonly data: Float32Array;
  private byGene: { indptr: Float64Array; spotIndex: Int32Array; data: Float32Array } | null = null;

  private constructor(nSpots: number, nGenes: number, indptr: Float64Array, geneIndex: Int32Array, data: Float32Array) {
    this.nSpots = nSpots;
    this.nGenes = nGenes;
    this.indptr = indptr;
    this.geneIndex = geneIndex;
    this.data = data;
  }

  /**
   * From CSR arrays over spots. Entries within a row may come in any order; they are sorted by gene.
   * Throws a plain Error on structural problems: readers wrap it with the file name.
   */
  static fromCsr(
    nSpots: number,
    nGenes: number,
    indptr: ArrayLike<number | bigint>,
    geneIndex: ArrayLike<number | bigint>,
    data: ArrayLike<number | bigint>,
  ): SparseCounts {
    if (indptr.length !== nSpots + 1) throw new Error(`indptr has ${indptr.length} entries, expected ${nSpots + 1}`);
    const nnz = Number(indptr[nSpots]);
    if (geneIndex.length < nnz || data.length < nnz) {
      throw new Error(`index/data arrays hold ${Math.min(geneIndex.length, data.length)} entries, indptr says ${nnz}`);
    }
    const ptr = Float64Array.from({ length: nSpots + 1 }, (_, i) => Number(indptr[i]));
    const genes = new Int32Array(nnz);
    const values = new Float32Array(nnz);
    for (let s = 0; s < nSpots; s++) {
      const start = ptr[s];
      const end = ptr[s + 1];
      if (!(end >= start) || end > nnz) throw new Error(`indptr is not non-decreasing at spot ${s}`);
      let sorted = true;
      for (let k = start; k < end; k++) {
        const g = Number(geneIndex[k]);
        const v = Number(data[k]);
        if (!Number.isInteger(g) || g < 0 || g >= nGenes)
          throw new Error(`gene index ${g} out of range 0..${nGenes - 1}`);
        checkCount(v, s, g);
        genes[k] = g;
        values[k] = v;
        if (k > start && genes[k - 1] >= g) sorted = false;
      }
      if (!sorted) sortRow(genes, values, start, end);
    }
    return new SparseCounts(nSpots, nGenes, ptr, genes, values);
  }

  /** From CSC arrays (one chunk per gene): transposed into CSR once. */
  static fromCsc(
    nSpots: number,
    nGenes: number,
    indptr: ArrayLike<number | bigint>,
    spotIndex: ArrayLike<number | bigint>,
    data: ArrayLike<number | bigint>,
  ): SparseCounts {
    const t = transpose(nGenes, nSpots, indptr, spotIndex, data);
    return SparseCounts.fromCsr(nSpots, nGenes, t.indptr, t.index, t.data);
  }

  /** From a dense row-major spots x genes array; zeros are dropped. */
  static fromDense(nSpots: number, nGenes: number, values: ArrayLike<number>): SparseCounts {
    if (values.length !== nSpots * nGenes)
      throw new Error(`dense matrix has ${values.length} values, expected ${nSpots}x${nGenes}`);
    const indptr = new Float64Array(nSpots + 1);
    const genes: number[] = [];
    const data: number[] = [];
    for (let s = 0; s < nSpots; s++) {
      for (let g = 0; g < nGenes; g++) {
        const v = values[s * nGenes + g];
        if (v !== 0) {
          genes.push(g);
          data.push(v);
        }
      }
      indptr[s + 1] = genes.length;
    }
    return SparseCounts.fromCsr(nSpots, nGenes, indptr, genes, data);
  }

  /** The CSR arrays as plain data (structured clone drops the class), shared, not copied. */
  toTransferable(): TransferableCounts {
    const { nSpots, nGenes, indptr, geneIndex, data } = this;
    return { nSpots, nGenes, indptr, geneIndex, data };
  }

  /**
   * Back from `toTransferable` (in another thread): the arrays were checked when first built, so only their shapes
   * are checked here, not every entry again.
   */
  static fromTransferable(t: TransferableCounts): SparseCounts {
    const nnz = t.indptr[t.nSpots];
    if (t.indptr.length !== t.nSpots + 1 || t.geneIndex.length !== nnz || t.data.length !== nnz) {
      throw new Error(
        `counts of ${t.nSpots} spots: indptr has ${t.indptr.length} entries, ` +
          `index/data ${t.geneIndex.length}/${t.data.length} for ${nnz} non-zeros`,
      );
    }
    return new SparseCounts(t.nSpots, t.nGenes, t.indptr, t.geneIndex, t.data);
  }

  get nnz(): number {
    return this.data.length;
  }

  /** Non-zero counts of one spot. */
  spot(spot: number): SparseVector {
    const start = this.indptr[spot];
    const end = this.indptr[spot + 1];
    return { indices: this.geneIndex.subarray(start, end), values: this.data.subarray(start, end) };
  }

  /** Non-zero counts of one gene over spots, from the gene-major index. */
  gene(gene: number): SparseVector {
    const index = this.geneMajor();
    const start = index.indptr[gene];
    const end = index.indptr[gene + 1];
    return { indices: index.spotIndex.subarray(start, end), values: index.data.subarray(start, end) };
  }

  /** One gene as a dense vector over all spots. */
  geneDense(gene: number): Float32Array {
    const out = new Float32Array(this.nSpots);
    const { indices, values } = this.gene(gene);
    for (let k = 0; k < indices.length; k++) out[indices[k]] = values[k];
    return out;
  }

  get(spot: number, gene: number): number {
    const { indices, values } = this.spot(spot);
    let lo = 0;
    let hi = indices.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (indices[mid] === gene) return values[mid];
      if (indices[mid] < gene) lo = mid + 1;
      else hi = mid - 1;
    }
    return 0;
  }

  /** Total counts per spot (library size). */
  spotTotals(): Float64Array {
    const totals = new Float64Array(this.nSpots);
    for (let s = 0; s < this.nSpots; s++) {
      for (let k = this.indptr[s]; k < this.indptr[s + 1]; k++) totals[s] += this.data[k];
    }
    return totals;
  }

  /** Number of expressed (non-zero) genes per spot. */
  spotNnz(): Int32Array {
    return Int32Array.from({ length: this.nSpots }, (_, s) => this.indptr[s + 1] - this.indptr[s]);
  }

  /** A new matrix with only the given spots (in that order) and, optionally, only the given genes. */
  select(spots: ArrayLike<number>, genes?: ArrayLike<number>): SparseCounts {
    const geneMap = genes ? new Int32Array(this.nGenes).fill(-1) : null;
    if (genes && geneMap) for (let j = 0; j < genes.length; j++) geneMap[genes[j]] = j;
    const indptr = new Float64Array(spots.length + 1);
    const outGenes: number[] = [];
    const outData: number[] = [];
    for (let i = 0; i < spots.length; i++) {
      const s = spots[i];
      for (let k = this.indptr[s]; k < this.indptr[s + 1]; k++) {
        const g = geneMap ? geneMap[this.geneIndex[k]] : this.geneIndex[k];
        if (g < 0) continue;
        outGenes.push(g);
        outData.push(this.data[k]);
      }
      indptr[i + 1] = outGenes.length;
    }
    return SparseCounts.fromCsr(spots.length, genes ? genes.length : this.nGenes, indptr, outGenes, outData);
  }

  private geneMajor() {
    if (!this.byGene) {
      const t = transpose(this.nSpots, this.nGenes, this.indptr, this.geneIndex, this.data);
      this.byGene = { indptr: t.indptr, spotIndex: t.index, data: t.data };
    }
    return this.byGene;
  }
}

function checkCount(value: number, spot: number, gene: number): void {
  if (!Number.isFinite(value)) throw new Error(`count at spot ${spot}, gene ${gene} is not finite (${value})`);
  if (value < 0) throw new Error(`count at spot ${spot}, gene ${gene} is negative (${value})`);
}

/** Compressed rows -> compressed columns in O(nnz); output indices come out sorted. */
function transpose(
  nRows: number,
  nCols: number,
  indptr: ArrayLike<number | bigint>,
  index: ArrayLike<number | bigint>,
  data: ArrayLike<number | bigint>,
): { indptr: Float64Array; index: Int32Array; data: Float32Array } {
  const nnz = Number(indptr[nRows]);
  const outPtr = new Float64Array(nCols + 1);
  for (let k = 0; k < nnz; k++) {
    const c = Number(index[k]);
    if (!Number.isInteger(c) || c < 0 || c >= nCols) throw new Error(`index ${c} out of range 0..${nCols - 1}`);
    outPtr[c + 1]++;
  }
  for (let c = 0; c < nCols; c++) outPtr[c + 1] += outPtr[c];
  const next = Float64Array.from(outPtr.subarray(0, nCols));
  const outIndex = new Int32Array(nnz);
  const outData = new Float32Array(nnz);
  for (let r = 0; r < nRows; r++) {
    for (let k = Number(indptr[r]); k < Number(indptr[r + 1]); k++) {
      const c = Number(index[k]);
      const at = next[c]++;
      outIndex[at] = r;
      outData[at] = Number(data[k]);
    }
  }
  return { indptr: outPtr, index: outIndex, data: outData };
}

function sortRow(genes: Int32Array, values: Float32Array, start: number, end: number): void {
  const order = Array.from({ length: end - start }, (_, i) => start + i).sort((a, b) => genes[a] - genes[b]);
  const g = order.map((k) => genes[k]);
  const v = order.map((k) => values[k]);
  genes.set(g, start);
  values.set(v, start);
  for (let k = start + 1; k < end; k++) {
    if (genes[k] === genes[k - 1]) throw new Error(`gene ${genes[k]} appears twice in one spot`);
  }
}
