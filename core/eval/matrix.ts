// Small dense-matrix helpers for the evaluation code: row-major typed arrays, no tensors. Sizes here are a few
// thousand spots by a few hundred features, so plain loops over contiguous rows are fast enough and exact to repeat.

/** A row-major dense matrix: element (i, j) is data[i * cols + j]. */
export interface Matrix {
  readonly rows: number;
  readonly cols: number;
  readonly data: Float32Array | Float64Array;
}

/** A row view or a plain vector. */
export type Vector = Float32Array | Float64Array;

/** A matrix over `data` (checked: data.length must equal rows * cols). */
export function matrix(rows: number, cols: number, data: Float32Array | Float64Array): Matrix {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 0) {
    throw new Error(`bad matrix shape ${rows} x ${cols}`);
  }
  if (data.length !== rows * cols) {
    throw new Error(`matrix data has ${data.length} values, expected ${rows} x ${cols} = ${rows * cols}`);
  }
  return { rows, cols, data };
}

/** A Float64 matrix from nested arrays (all rows the same length). */
export function fromRows(rows: ArrayLike<ArrayLike<number>>, cols?: number): Matrix {
  const n = rows.length;
  const d = cols ?? (n > 0 ? rows[0].length : 0);
  const data = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    const row = rows[i];
    if (row.length !== d) throw new Error(`row ${i} has ${row.length} values, expected ${d}`);
    for (let j = 0; j < d; j++) data[i * d + j] = row[j];
  }
  return { rows: n, cols: d, data };
}

/** Row i as a view (no copy). */
export function row(m: Matrix, i: number): Vector {
  return m.data.subarray(i * m.cols, (i + 1) * m.cols);
}

/** Views of every row, made once so inner loops allocate nothing. */
export function rowViews(m: Matrix): Vector[] {
  const out: Vector[] = new Array(m.rows);
  for (let i = 0; i < m.rows; i++) out[i] = row(m, i);
  return out;
}

/** The listed rows, copied into a new Float64 matrix in the order given. */
export function selectRows(m: Matrix, indices: ArrayLike<number>): Matrix {
  const d = m.cols;
  const data = new Float64Array(indices.length * d);
  for (let r = 0; r < indices.length; r++) {
    const i = indices[r];
    if (!(i >= 0 && i < m.rows)) throw new Error(`row ${i} out of range (0..${m.rows - 1})`);
    for (let j = 0; j < d; j++) data[r * d + j] = m.data[i * d + j];
  }
  return { rows: indices.length, cols: d, data };
}

/** Column j, copied into a Float64Array. */
export function column(m: Matrix, j: number): Float64Array {
  const out = new Float64Array(m.rows);
  for (let i = 0; i < m.rows; i++) out[i] = m.data[i * m.cols + j];
  return out;
}

/** Per-column mean and standard deviation (population, n in the divisor) in float64. */
export interface ColumnScale {
  readonly mean: Float64Array;
  /** Standard deviation; columns with (numerically) zero spread get 1, so they pass through centred. */
  readonly scale: Float64Array;
}

export function columnScale(m: Matrix): ColumnScale {
  const d = m.cols;
  const mean = new Float64Array(d);
  const scale = new Float64Array(d);
  const n = m.rows;
  if (n === 0) {
    scale.fill(1);
    return { mean, scale };
  }
  for (let i = 0; i < n; i++) {
    const o = i * d;
    for (let j = 0; j < d; j++) mean[j] += m.data[o + j];
  }
  for (let j = 0; j < d; j++) mean[j] /= n;
  for (let i = 0; i < n; i++) {
    const o = i * d;
    for (let j = 0; j < d; j++) {
      const v = m.data[o + j] - mean[j];
      scale[j] += v * v;
    }
  }
  for (let j = 0; j < d; j++) {
    const sd = Math.sqrt(scale[j] / n);
    // Relative threshold: a column that is constant up to rounding must not be blown up to unit variance.
    scale[j] = sd > 1e-12 * Math.max(1, Math.abs(mean[j])) ? sd : 1;
  }
  return { mean, scale };
}

/** (x - mean) / scale, column-wise, as a new Float64 matrix. */
export function standardise(m: Matrix, s: ColumnScale): Matrix {
  const d = m.cols;
  if (s.mean.length !== d) throw new Error(`matrix has ${d} columns, the scaling ${s.mean.length}`);
  const data = new Float64Array(m.rows * d);
  for (let i = 0; i < m.rows; i++) {
    const o = i * d;
    for (let j = 0; j < d; j++) data[o + j] = (m.data[o + j] - s.mean[j]) / s.scale[j];
  }
  return { rows: m.rows, cols: d, data };
}

/** Rows of `a` followed by rows of `b`. */
export function concatRows(a: Matrix, b: Matrix): Matrix {
  if (a.cols !== b.cols) throw new Error(`cannot stack ${a.cols}-column and ${b.cols}-column matrices`);
  const data = new Float64Array((a.rows + b.rows) * a.cols);
  data.set(a.data, 0);
  data.set(b.data, a.rows * a.cols);
  return { rows: a.rows + b.rows, cols: a.cols, data };
}

/** Finite check over all entries (NaN or infinite features would poison every fit silently). */
export function assertFinite(m: Matrix, what: string): void {
  for (let k = 0; k < m.data.length; k++) {
    if (!Number.isFinite(m.data[k])) {
      throw new Error(`${what}: non-finite value at row ${Math.floor(k / m.cols)}, column ${k % m.cols}`);
    }
  }
}

/**
 * A stratified split of the indices 0..n-1 by `groups` (class index per item): in each group, a seeded shuffle, then
 * round(fraction * size) items go to the second part, but at least one item stays in the first part, and a group of
 * two or more gives at least one to the second. Both parts come back in increasing index order.
 */
export function stratifiedSplit(
  groups: ArrayLike<number>,
  fraction: number,
  random: () => number,
): { first: number[]; second: number[] } {
  const byGroup = new Map<number, number[]>();
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i];
    let list = byGroup.get(g);
    if (!list) byGroup.set(g, (list = []));
    list.push(i);
  }
  const first: number[] = [];
  const second: number[] = [];
  for (const g of [...byGroup.keys()].sort((a, b) => a - b)) {
    const items = byGroup.get(g)!;
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      const t = items[i];
      items[i] = items[j];
      items[j] = t;
    }
    let nSecond = Math.round(fraction * items.length);
    if (items.length >= 2) nSecond = Math.max(1, nSecond);
    nSecond = Math.min(nSecond, items.length - 1);
    for (let r = 0; r < items.length; r++) (r < nSecond ? second : first).push(items[r]);
  }
  first.sort((a, b) => a - b);
  second.sort((a, b) => a - b);
  return { first, second };
}
