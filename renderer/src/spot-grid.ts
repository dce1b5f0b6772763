// A uniform grid over spot centres for picking under the pointer: O(1) cells to look at, whatever the zoom.

export class SpotGrid {
  private readonly x0: number;
  private readonly y0: number;
  private readonly cell: number;
  private readonly cols: number;
  private readonly rows: number;
  /** Spots of cell c: items[start[c] .. start[c + 1]). */
  private readonly start: Int32Array;
  private readonly items: Int32Array;

  constructor(
    private readonly x: Float32Array,
    private readonly y: Float32Array,
  ) {
    const n = x.length;
    let [minX, minY, maxX, maxY] = [Infinity, Infinity, -Infinity, -Infinity];
    for (let i = 0; i < n; i++) {
      minX = Math.min(minX, x[i]);
      maxX = Math.max(maxX, x[i]);
      minY = Math.min(minY, y[i]);
      maxY = Math.max(maxY, y[i]);
    }
    if (n === 0) [minX, minY, maxX, maxY] = [0, 0, 1, 1];
    const width = Math.max(maxX - minX, 1);
    const height = Math.max(maxY - minY, 1);
    // About two spots a cell.
    this.cell = Math.max(Math.sqrt((width * height * 2) / Math.max(n, 1)), 1e-6);
    this.cols = Math.min(Math.floor(width / this.cell) + 1, 4096);
    this.rows = Math.min(Math.floor(height / this.cell) + 1, 4096);
    this.x0 = minX;
    this.y0 = minY;
    const cellOf = new Int32Array(n);
    const start = new Int32Array(this.cols * this.rows + 1);
    for (let i = 0; i < n; i++) {
      cellOf[i] = this.cellIndex(this.colOf(x[i]), this.rowOf(y[i]));
      start[cellOf[i] + 1]++;
    }
    for (let c = 0; c < this.cols * this.rows; c++) start[c + 1] += start[c];
    const next = start.slice(0, -1);
    const items = new Int32Array(n);
    for (let i = 0; i < n; i++) items[next[cellOf[i]]++] = i;
    this.start = start;
    this.items = items;
  }

  /** The spot whose centre is nearest (px, py) within `radius`, among those `accept` takes; -1 for none. */
  nearest(px: number, py: number, radius: number, accept: (spot: number) => boolean): number {
    let best = -1;
    let bestD = radius * radius;
    this.within(px, py, radius, (i, d) => {
      if (d <= bestD && accept(i)) {
        best = i;
        bestD = d;
      }
    });
    return best;
  }

  /** Calls `visit` with every spot whose centre lies within `radius` of (px, py), and its squared distance. */
  within(px: number, py: number, radius: number, visit: (spot: number, squaredDistance: number) => void): void {
    const c0 = this.colOf(px - radius);
    const c1 = this.colOf(px + radius);
    const r0 = this.rowOf(py - radius);
    const r1 = this.rowOf(py + radius);
    const r2 = radius * radius;
    for (let r = r0; r <= r1; r++) {
      for (let c = c0; c <= c1; c++) {
        const cell = this.cellIndex(c, r);
        for (let k = this.start[cell]; k < this.start[cell + 1]; k++) {
          const i = this.items[k];
          const dx = this.x[i] - px;
          const dy = this.y[i] - py;
          const d = dx * dx + dy * dy;
          if (d <= r2) visit(i, d);
        }
      }
    }
  }

  private colOf(x: number): number {
    return Math.min(this.cols - 1, Math.max(0, Math.floor((x - this.x0) / this.cell)));
  }

  private rowOf(y: number): number {
    return Math.min(this.rows - 1, Math.max(0, Math.floor((y - this.y0) / this.cell)));
  }

  private cellIndex(col: number, row: number): number {
    return row * this.cols + col;
  }
}
