// The evaluation report: one self-contained HTML file that opens offline. Inline CSS and inline SVG only: no
// scripts, no remote fonts, images or links. Every piece of text that comes from data (section, class and gene
// names, model settings) is escaped.

import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../atomic-write.js';
import type { GenePredictionResult } from './gene-prediction.js';
import type { ProbeResult } from './logistic.js';
import type { Matrix } from './matrix.js';

export type SummaryRow = readonly [label: string, value: string | number | boolean | null];

/** What the report shows; every part is optional except the title. */
export interface ReportInput {
  readonly title: string;
  /** When the evaluation ran (free text, e.g. an ISO date). */
  readonly generated?: string;
  /** Data summary: sections, label column, spot counts... */
  readonly data?: readonly SummaryRow[];
  /** Model summary: name, mode, feature kind, curvature... */
  readonly model?: readonly SummaryRow[];
  readonly probe?: Pick<
    ProbeResult,
    'metrics' | 'confusion' | 'classesAbsentFromTraining' | 'chosenC' | 'nTrain' | 'nTest' | 'leftOut'
  >;
  readonly genes?: Pick<
    GenePredictionResult,
    'genes' | 'summary' | 'knn' | 'ridge' | 'measured' | 'predicted' | 'nTrain' | 'nTest' | 'unknownGenes'
  >;
  /** Test spot positions (pixels or any unit, y down), in test-row order, for the predicted vs measured maps. */
  readonly spots?: { readonly x: ArrayLike<number>; readonly y: ArrayLike<number> };
  /** Genes drawn as maps (default 3, the best by mean correlation of the two predictors). */
  readonly mapGenes?: number;
  /** Cross-validation folds, each drawn like a single evaluation under its own heading, after the above. */
  readonly folds?: readonly {
    readonly title: string;
    readonly probe?: ReportInput['probe'];
    readonly genes?: ReportInput['genes'];
    readonly spots?: ReportInput['spots'];
  }[];
}

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(text: unknown): string {
  return String(text)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

function fmt(value: number | null | undefined, digits = 3): string {
  if (value === null || value === undefined || Number.isNaN(value)) return 'n/a';
  return value.toFixed(digits);
}

function fmtC(value: number): string {
  return Number.isFinite(value) ? value.toPrecision(3) : 'n/a';
}

/** Rounds SVG coordinates to 0.1 px so files stay small. */
function px(v: number): string {
  return (Math.round(v * 10) / 10).toString();
}

const VIRIDIS: [number, number, number][] = [
  [68, 1, 84],
  [59, 82, 139],
  [33, 145, 140],
  [94, 201, 98],
  [253, 231, 37],
];

/** A viridis-like colour for t in [0, 1]. */
function colour(t: number): string {
  const u = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(u));
  const f = u - i;
  const c = VIRIDIS[i].map((v, j) => Math.round(v + f * (VIRIDIS[i + 1][j] - v)));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

/** White to dark blue for heatmaps, t in [0, 1]. */
function blues(t: number): string {
  const u = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0));
  const from = [247, 251, 255];
  const to = [8, 48, 107];
  const c = from.map((v, j) => Math.round(v + u * (to[j] - v)));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

function table(rows: readonly SummaryRow[]): string {
  const body = rows
    .map(([k, v]) => `<tr><th scope="row">${escapeHtml(k)}</th><td>${escapeHtml(v ?? 'n/a')}</td></tr>`)
    .join('');
  return `<table class="kv">${body}</table>`;
}

const CSS = `
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1100px;color:#1d2330;padding:0 16px}
h1{font-size:1.6em;margin-bottom:0}h2{margin-top:1.8em;border-bottom:1px solid #d6dae3;padding-bottom:4px}
.meta{color:#5b6475}
table{border-collapse:collapse;margin:8px 0}th,td{padding:3px 10px;border-bottom:1px solid #e6e8ee;text-align:left}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
table.kv th{font-weight:600;color:#39414f}
.cols{display:flex;flex-wrap:wrap;gap:32px}
.note{background:#fff7e0;border-left:4px solid #e0b030;padding:6px 10px;margin:8px 0}
.maps{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
figure{margin:0}figcaption{font-size:.9em;color:#39414f;text-align:center}
svg text{font-family:inherit}
`;

function probeSection(probe: NonNullable<ReportInput['probe']>): string {
  const m = probe.metrics;
  const rows: SummaryRow[] = [
    ['Accuracy', fmt(m.accuracy)],
    ['Balanced accuracy', fmt(m.balancedAccuracy)],
    ['Macro-F1', fmt(m.macroF1)],
    ['Macro one-vs-rest AUC', fmt(m.macroAuc)],
    ['Chosen C', fmtC(probe.chosenC)],
    ['Training spots', probe.nTrain],
    ['Test spots scored', probe.nTest],
  ];
  const notes: string[] = [];
  if (probe.classesAbsentFromTraining.length) {
    notes.push(
      'Classes absent from training (each of their test spots counts as an error): ' +
        probe.classesAbsentFromTraining.map((c) => `${escapeHtml(c.name)} (${c.count})`).join(', '),
    );
  }
  if (m.aucSkipped.length) {
    notes.push(
      `AUC skipped (no positives or no negatives in the test labels): ${m.aucSkipped.map(escapeHtml).join(', ')}`,
    );
  }
  const lo = probe.leftOut;
  if (lo) {
    notes.push(
      `Left out: training ${lo.train.unlabelled} unlabelled, ${lo.train.dropped} dropped; ` +
        `test ${lo.test.unlabelled} unlabelled, ${lo.test.dropped} dropped.`,
    );
  }
  const perClass = m.perClass
    .map(
      (c) =>
        `<tr><td>${escapeHtml(c.name)}</td><td class="num">${c.support}</td><td class="num">${c.predicted}</td>` +
        `<td class="num">${fmt(c.recall)}</td><td class="num">${fmt(c.precision)}</td><td class="num">${fmt(c.f1)}</td>` +
        `<td class="num">${fmt(c.auc)}</td></tr>`,
    )
    .join('');
  return (
    `<section id="probe"><h2>Linear probe</h2><div class="cols"><div>${table(rows)}</div>` +
    `<div><table><thead><tr><th>Class</th><th class="num">Support</th><th class="num">Predicted</th>` +
    `<th class="num">Recall</th><th class="num">Precision</th><th class="num">F1</th><th class="num">AUC</th></tr></thead>` +
    `<tbody>${perClass}</tbody></table></div></div>` +
    notes.map((n) => `<p class="note">${n}</p>`).join('') +
    `<h3>Confusion matrix</h3>${confusionSvg(probe.confusion.classes, probe.confusion.counts)}</section>`
  );
}

/** Heatmap of counts, coloured by the row fraction (recall per true class); rows truth, columns prediction. */
export function confusionSvg(classes: readonly string[], counts: readonly (readonly number[])[]): string {
  const k = classes.length;
  const cell = Math.max(22, Math.min(48, Math.floor(480 / Math.max(1, k))));
  const label = Math.min(200, 12 + 7 * Math.max(4, ...classes.map((c) => c.length)));
  const left = label + 8;
  const top = label + 8;
  const width = Math.max(left + k * cell + 10, 460);
  const height = top + k * cell + 30;
  const parts: string[] = [];
  for (let t = 0; t < k; t++) {
    const total = counts[t].reduce((a, b) => a + b, 0);
    for (let p = 0; p < k; p++) {
      const n = counts[t][p];
      const frac = total ? n / total : 0;
      const x = left + p * cell;
      const y = top + t * cell;
      parts.push(
        `<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="${blues(frac)}" stroke="#ffffff">` +
          `<title>${escapeHtml(`true ${classes[t]}, predicted ${classes[p]}: ${n}`)}</title></rect>`,
        `<text x="${px(x + cell / 2)}" y="${px(y + cell / 2 + 4)}" text-anchor="middle" font-size="11" fill="${frac > 0.5 ? '#ffffff' : '#1d2330'}">${n}</text>`,
      );
    }
    parts.push(
      `<text x="${left - 6}" y="${px(top + t * cell + cell / 2 + 4)}" text-anchor="end" font-size="11">${escapeHtml(classes[t])}</text>`,
    );
  }
  for (let p = 0; p < k; p++) {
    const x = left + p * cell + cell / 2 + 4;
    parts.push(
      `<text x="${px(x)}" y="${top - 6}" text-anchor="start" font-size="11" transform="rotate(-90 ${px(x)} ${top - 6})">${escapeHtml(classes[p])}</text>`,
    );
  }
  parts.push(
    `<text x="4" y="${height - 8}" font-size="12">rows: true class; columns: predicted; colour: fraction of the row</text>`,
  );
  return `<svg class="confusion" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="confusion matrix">${parts.join('')}</svg>`;
}

/** Horizontal bars of per-gene Pearson r for both predictors (null shown as a gap with 'n/a'). */
export function correlationBarsSvg(
  genes: readonly { name: string; knn: number | null; ridge: number | null }[],
): string {
  const rowH = 16;
  const bar = 6;
  const labelW = Math.min(160, 10 + 7 * Math.max(4, ...genes.map((g) => g.name.length)));
  const plotW = 420;
  const top = 28;
  const values = genes.flatMap((g) => [g.knn, g.ridge]).filter((v): v is number => v !== null);
  const lo = Math.min(0, Math.floor(Math.min(0, ...values) * 10) / 10);
  const hi = 1;
  const sx = (v: number) => labelW + ((v - lo) / (hi - lo)) * plotW;
  const height = top + genes.length * rowH + 30;
  const width = labelW + plotW + 70;
  const parts: string[] = [];
  for (let t = Math.ceil(lo * 5) / 5; t <= hi + 1e-9; t += 0.2) {
    const x = sx(t);
    parts.push(
      `<line x1="${px(x)}" y1="${top - 4}" x2="${px(x)}" y2="${top + genes.length * rowH}" stroke="${Math.abs(t) < 1e-9 ? '#555' : '#e3e6ec'}"/>`,
      `<text x="${px(x)}" y="${top + genes.length * rowH + 14}" text-anchor="middle" font-size="10">${t.toFixed(1)}</text>`,
    );
  }
  const zero = sx(0);
  genes.forEach((g, i) => {
    const y = top + i * rowH;
    parts.push(`<text x="${labelW - 6}" y="${y + 11}" text-anchor="end" font-size="11">${escapeHtml(g.name)}</text>`);
    (
      [
        [g.knn, '#3b6fb6', 0, 'kNN'],
        [g.ridge, '#e07b39', bar + 1, 'ridge'],
      ] as const
    ).forEach(([r, fill, dy, which]) => {
      if (r === null) {
        parts.push(`<text x="${px(zero + 3)}" y="${y + dy + 7}" font-size="8" fill="#777">n/a</text>`);
        return;
      }
      const x0 = Math.min(zero, sx(r));
      parts.push(
        `<rect x="${px(x0)}" y="${y + dy + 1}" width="${px(Math.abs(sx(r) - zero))}" height="${bar}" fill="${fill}">` +
          `<title>${escapeHtml(`${g.name} ${which}: r = ${r.toFixed(3)}`)}</title></rect>`,
      );
    });
  });
  parts.push(
    `<rect x="${labelW}" y="6" width="10" height="8" fill="#3b6fb6"/><text x="${labelW + 14}" y="14" font-size="11">nearest spots (kNN)</text>`,
    `<rect x="${labelW + 150}" y="6" width="10" height="8" fill="#e07b39"/><text x="${labelW + 164}" y="14" font-size="11">ridge regression</text>`,
    `<text x="${px(labelW + plotW / 2)}" y="${height - 4}" text-anchor="middle" font-size="11">Pearson r, predicted vs measured</text>`,
  );
  return `<svg class="bars" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="per-gene correlations">${parts.join('')}</svg>`;
}

/** Spots as circles coloured by value (own min..max), fitted into a size x size box, y down. */
export function spotMapSvg(
  x: ArrayLike<number>,
  y: ArrayLike<number>,
  values: ArrayLike<number>,
  caption: string,
  size = 220,
): string {
  const n = Math.min(x.length, y.length, values.length);
  let x0 = Infinity;
  let x1 = -Infinity;
  let y0 = Infinity;
  let y1 = -Infinity;
  let v0 = Infinity;
  let v1 = -Infinity;
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(x[i]) || !Number.isFinite(y[i])) continue;
    x0 = Math.min(x0, x[i]);
    x1 = Math.max(x1, x[i]);
    y0 = Math.min(y0, y[i]);
    y1 = Math.max(y1, y[i]);
    if (Number.isFinite(values[i])) {
      v0 = Math.min(v0, values[i]);
      v1 = Math.max(v1, values[i]);
    }
  }
  const pad = 6;
  const span = Math.max(x1 - x0, y1 - y0, 1e-9);
  const s = (size - 2 * pad) / span;
  const w = Number.isFinite(span) && n ? (x1 - x0) * s + 2 * pad : size;
  const h = Number.isFinite(span) && n ? (y1 - y0) * s + 2 * pad : size;
  // Radius from the area per spot, so a lattice of spots about touches.
  const r = Math.max(1, Math.min(8, 0.5 * Math.sqrt(((w - 2 * pad) * (h - 2 * pad) + 1) / Math.max(1, n))));
  const circles: string[] = [];
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(x[i]) || !Number.isFinite(y[i])) continue;
    const t = v1 > v0 ? (values[i] - v0) / (v1 - v0) : 0.5;
    circles.push(
      `<circle cx="${px(pad + (x[i] - x0) * s)}" cy="${px(pad + (y[i] - y0) * s)}" r="${px(r)}" fill="${colour(t)}"/>`,
    );
  }
  const W = Math.ceil(w);
  const H = Math.ceil(h);
  const range = v1 >= v0 ? `${fmt(v0, 2)} to ${fmt(v1, 2)}` : 'no values';
  return (
    `<figure><svg class="map" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${escapeHtml(caption)}">` +
    `<rect width="${W}" height="${H}" fill="#f4f5f8"/>${circles.join('')}</svg>` +
    `<figcaption>${escapeHtml(caption)}<br>${escapeHtml(range)}</figcaption></figure>`
  );
}

function matrixColumn(m: Matrix, g: number): Float64Array {
  const out = new Float64Array(m.rows);
  for (let i = 0; i < m.rows; i++) out[i] = m.data[i * m.cols + g];
  return out;
}

function genesSection(genes: NonNullable<ReportInput['genes']>, input: ReportInput): string {
  const s = genes.summary;
  const summaryRows =
    `<tr><td>Nearest spots (k = ${genes.knn.k}, ${escapeHtml(genes.knn.weighting)} weights, ${escapeHtml(genes.knn.distance)} distance)</td>` +
    `<td class="num">${fmt(s.knn.mean)}</td><td class="num">${fmt(s.knn.median)}</td><td class="num">${s.knn.n}</td><td class="num">${s.knn.nulls}</td></tr>` +
    `<tr><td>Ridge regression (alpha ${fmtC(genes.ridge.alpha)})</td>` +
    `<td class="num">${fmt(s.ridge.mean)}</td><td class="num">${fmt(s.ridge.median)}</td><td class="num">${s.ridge.n}</td><td class="num">${s.ridge.nulls}</td></tr>`;
  const notes: string[] = [];
  if (genes.unknownGenes.length) notes.push(`Genes not found: ${genes.unknownGenes.map(escapeHtml).join(', ')}`);
  let maps = '';
  const spots = input.spots;
  const nMaps = input.mapGenes ?? 3;
  if (spots && nMaps > 0 && genes.genes.length) {
    const score = (g: { knn: number | null; ridge: number | null }) => {
      const v = [g.knn, g.ridge].filter((r): r is number => r !== null);
      return v.length ? v.reduce((a, b) => a + b, 0) / v.length : -Infinity;
    };
    const order = genes.genes
      .map((g, col) => ({ g, col, score: score(g) }))
      .filter((e) => e.score > -Infinity)
      .sort((a, b) => b.score - a.score || a.col - b.col)
      .slice(0, nMaps);
    maps =
      `<h3>Predicted vs measured, best ${order.length} genes</h3><p class="meta">Each map is coloured over its own range ` +
      `(the correlation compares patterns, not levels).</p>` +
      order
        .map(
          ({ g, col }) =>
            `<h4>${escapeHtml(g.name)}: kNN r = ${fmt(g.knn)}, ridge r = ${fmt(g.ridge)}</h4><div class="maps">` +
            spotMapSvg(spots.x, spots.y, matrixColumn(genes.measured, col), `${g.name}, measured`) +
            spotMapSvg(spots.x, spots.y, matrixColumn(genes.predicted.knn, col), `${g.name}, nearest spots`) +
            spotMapSvg(spots.x, spots.y, matrixColumn(genes.predicted.ridge, col), `${g.name}, ridge`) +
            `</div>`,
        )
        .join('');
  }
  return (
    `<section id="genes"><h2>Gene expression from the image</h2>` +
    `<p class="meta">Pearson correlation per gene between predicted and measured log-normalised expression on ` +
    `${genes.nTest} test spots (${genes.nTrain} reference spots).</p>` +
    `<table><thead><tr><th>Predictor</th><th class="num">Mean r</th><th class="num">Median r</th><th class="num">Genes</th>` +
    `<th class="num">Undefined r</th></tr></thead><tbody>${summaryRows}</tbody></table>` +
    notes.map((n) => `<p class="note">${n}</p>`).join('') +
    `<h3>Per-gene correlation</h3>${correlationBarsSvg(genes.genes)}${maps}</section>`
  );
}

/** The whole report as one HTML string. */
export function renderReport(input: ReportInput): string {
  const parts: string[] = [];
  parts.push(`<h1>${escapeHtml(input.title)}</h1>`);
  if (input.generated) parts.push(`<p class="meta">Generated ${escapeHtml(input.generated)}</p>`);
  if (input.data?.length || input.model?.length) {
    parts.push(
      `<section id="summary"><div class="cols">` +
        (input.data?.length ? `<div><h2>Data</h2>${table(input.data)}</div>` : '') +
        (input.model?.length ? `<div><h2>Model</h2>${table(input.model)}</div>` : '') +
        `</div></section>`,
    );
  }
  if (input.probe) parts.push(probeSection(input.probe));
  if (input.genes) parts.push(genesSection(input.genes, input));
  for (const fold of input.folds ?? []) {
    parts.push(`<section class="fold"><h2>${escapeHtml(fold.title)}</h2>`);
    if (fold.probe) parts.push(probeSection(fold.probe));
    if (fold.genes) parts.push(genesSection(fold.genes, { ...input, spots: fold.spots }));
    parts.push(`</section>`);
  }
  return (
    `<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">` +
    `<meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<title>${escapeHtml(input.title)}</title><style>${CSS}</style></head>\n<body>\n${parts.join('\n')}\n</body></html>\n`
  );
}

/** Writes the report atomically (temp file in the same folder, then rename), creating the folder if needed. */
export async function writeReport(path: string, html: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, html);
}
