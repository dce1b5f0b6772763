// The hierarchy a hyperbolic model learns, on the Poincaré disk (issue 5): generic spots near the centre, specific
// ones near the rim.
//
// Radius (exact). A point of the hyperboloid of curvature -c, stored by its space components x (time component
// x0 = sqrt(1/c + |x|^2), docs/delst-method.md §2), maps to the Poincaré ball of radius 1/sqrt(c) by
// p = x / (1 + sqrt(c) x0); scaled by sqrt(c) to the unit ball, u = sqrt(c) x / (1 + sqrt(c) x0), whose norm is
// |u| = tanh(sqrt(c) d(O, x) / 2) with d(O, x) = asinh(sqrt(c)|x|) / sqrt(c) the geodesic distance from the origin
// (written that way: no cancellation near the origin, no overflow far from it). The disk shows every point at this
// radius: distance from the centre is the model's genericity, untouched by the projection.
//
// Angle (a projection). u points along x / |x|; only its direction has to come down from D dimensions to 2. The
// directions of all mapped points (image and gene embeddings together, so both share one frame) are centred on
// their mean and projected on their first two principal axes; a point's angle is that of its projection. Points
// whose directions differ most along the main axis of variation land on opposite sides. Two points at the same
// angle may still be far apart in D dimensions: only radii are exact.
//
// The request is checked on the main thread; the embedding and the layout run in the inference worker (computeMap).

import type { Matrix } from '../eval/matrix.js';
import type { Section } from '../section/section.js';
import type { DiskPoints, HyperbolicMap, HyperbolicMapRequest } from './api.js';
import { findModel, modelRef, type EmbeddingCache, type ModelRef } from './embedding-cache.js';
import type { InferenceClient } from './inference-client.js';
import { finalPhase, type JobContext } from './inference-status.js';
import { isUsable, type PredictionHost } from './predictions.js';

export const PROJECTION =
  'radius: the exact Poincaré-ball norm tanh(sqrt(c) d(O, z) / 2); angle: the direction of z, centred, on its ' +
  'first two principal axes (image and gene embeddings together)';

const POWER_ITERATIONS = 300;
const DIGITS = 1e5;

/** The unit Poincaré-disk norm of each row (hyperboloid space components at curvature -c). */
export function poincareRadii(points: Matrix, c: number): Float64Array {
  if (!(c > 0 && Number.isFinite(c))) throw new Error(`curvature must be positive, got ${c}`);
  const out = new Float64Array(points.rows);
  const sc = Math.sqrt(c);
  for (let r = 0; r < points.rows; r++) {
    let s = 0;
    for (let j = 0; j < points.cols; j++) s += points.data[r * points.cols + j] ** 2;
    out[r] = Math.tanh(Math.asinh(sc * Math.sqrt(s)) / 2);
  }
  return out;
}

/** Each row divided by its norm (a zero row stays zero: the origin has no direction). */
function directions(points: Matrix): Matrix {
  const data = new Float64Array(points.data.length);
  for (let r = 0; r < points.rows; r++) {
    const row = points.data.subarray(r * points.cols, (r + 1) * points.cols);
    let s = 0;
    for (const v of row) s += v * v;
    const n = Math.sqrt(s);
    if (n > 0) for (let j = 0; j < points.cols; j++) data[r * points.cols + j] = row[j] / n;
  }
  return { rows: points.rows, cols: points.cols, data };
}

/** Gram-Schmidt on the columns of a D x 2 basis, in place. */
function orthonormalise(a: Float64Array, b: Float64Array): void {
  const norm = (v: Float64Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  const na = norm(a) || 1;
  for (let j = 0; j < a.length; j++) a[j] /= na;
  const dot = a.reduce((s, x, j) => s + x * b[j], 0);
  for (let j = 0; j < b.length; j++) b[j] -= dot * a[j];
  const nb = norm(b) || 1;
  for (let j = 0; j < b.length; j++) b[j] /= nb;
}

/** The D x D covariance (sum of outer products, unscaled) of the rows centred on `mean`. */
function scatter(m: Matrix, mean: Float64Array): Float64Array {
  const d = m.cols;
  const out = new Float64Array(d * d);
  const row = new Float64Array(d);
  for (let r = 0; r < m.rows; r++) {
    for (let j = 0; j < d; j++) row[j] = m.data[r * d + j] - mean[j];
    for (let i = 0; i < d; i++) {
      const v = row[i];
      if (v === 0) continue;
      for (let j = i; j < d; j++) out[i * d + j] += v * row[j];
    }
  }
  for (let i = 0; i < d; i++) for (let j = 0; j < i; j++) out[i * d + j] = out[j * d + i];
  return out;
}

/**
 * The first two principal axes of the rows (centred on `mean`), by subspace iteration on their covariance from a
 * fixed start, each signed so that its largest component is positive (the same data gives the same picture).
 */
export function principalAxes(m: Matrix, mean: Float64Array): [Float64Array, Float64Array] {
  const d = m.cols;
  const cov = scatter(m, mean);
  const a = new Float64Array(d);
  const b = new Float64Array(d);
  for (let j = 0; j < d; j++) {
    a[j] = 1 + j / d;
    b[j] = Math.cos(j + 1);
  }
  orthonormalise(a, b);
  for (let it = 0; it < POWER_ITERATIONS; it++) {
    const na = new Float64Array(d);
    const nb = new Float64Array(d);
    for (let i = 0; i < d; i++) {
      for (let j = 0; j < d; j++) {
        na[i] += cov[i * d + j] * a[j];
        nb[i] += cov[i * d + j] * b[j];
      }
    }
    orthonormalise(na, nb);
    let change = 0;
    for (let j = 0; j < d; j++) change = Math.max(change, Math.abs(Math.abs(na[j]) - Math.abs(a[j])));
    a.set(na);
    b.set(nb);
    if (change < 1e-10) break;
  }
  for (const v of [a, b]) {
    let big = 0;
    for (let j = 1; j < d; j++) if (Math.abs(v[j]) > Math.abs(v[big])) big = j;
    if (v[big] < 0) for (let j = 0; j < d; j++) v[j] = -v[j];
  }
  return [a, b];
}

/**
 * Disk coordinates of groups of hyperboloid points (space components, curvature -c), one projection for all of
 * them (see the header): per group, x and y in the unit disk with hypot(x, y) = radius exactly.
 */
export function diskLayout(
  groups: readonly Matrix[],
  c: number,
): { x: Float64Array; y: Float64Array; radius: Float64Array }[] {
  const present = groups.filter((g) => g.rows > 0);
  const d = present[0]?.cols ?? 0;
  const dirs = groups.map(directions);
  const all: Matrix = {
    rows: dirs.reduce((n, g) => n + g.rows, 0),
    cols: d,
    data: new Float64Array(dirs.reduce((n, g) => n + g.data.length, 0)),
  };
  let offset = 0;
  for (const g of dirs) {
    if (g.rows > 0 && g.cols !== d) throw new Error(`embeddings of ${g.cols} and ${d} dimensions cannot share a map`);
    all.data.set(g.data, offset);
    offset += g.data.length;
  }
  const mean = new Float64Array(d);
  for (let r = 0; r < all.rows; r++) for (let j = 0; j < d; j++) mean[j] += all.data[r * d + j] / all.rows;
  const [a, b] = d > 0 ? principalAxes(all, mean) : [mean, mean];
  return groups.map((g, i) => {
    const radius = poincareRadii(g, c);
    const x = new Float64Array(g.rows);
    const y = new Float64Array(g.rows);
    const dir = dirs[i];
    for (let r = 0; r < g.rows; r++) {
      let pa = 0;
      let pb = 0;
      for (let j = 0; j < d; j++) {
        const v = dir.data[r * d + j] - mean[j];
        pa += v * a[j];
        pb += v * b[j];
      }
      const angle = pa === 0 && pb === 0 ? 0 : Math.atan2(pb, pa);
      x[r] = radius[r] * Math.cos(angle);
      y[r] = radius[r] * Math.sin(angle);
    }
    return { x, y, radius };
  });
}

const round = (v: number) => Math.round(v * DIGITS) / DIGITS;

function points(p: { x: Float64Array; y: Float64Array; radius: Float64Array }): DiskPoints {
  return { x: Array.from(p.x, round), y: Array.from(p.y, round), radius: Array.from(p.radius, round) };
}

/** What the worker is sent for a map, besides the sections. */
export interface MapParams {
  readonly model: ModelRef;
  /** Gene embeddings too. */
  readonly genes: boolean;
}

/** The map of the job's sections, in their order. */
export interface MapOutput {
  readonly curvature: number;
  readonly sections: { spotIndex: number[]; image: DiskPoints; gene: DiskPoints | null }[];
}

/** The API call: see StudioApi.getHyperbolicMap. Run it inside the client's `serial`. */
export async function hyperbolicMap(
  host: PredictionHost,
  inference: InferenceClient,
  sectionIds: readonly string[],
  request: HyperbolicMapRequest,
): Promise<HyperbolicMap> {
  if (typeof request !== 'object' || request === null) throw new Error('getHyperbolicMap: give { modelId }');
  if (!Array.isArray(sectionIds) || sectionIds.length === 0) {
    throw new Error('getHyperbolicMap: give a non-empty array of open section ids');
  }
  const sections = [...new Set(sectionIds)].map((id) => host.section(id));
  const bare = sections.filter((s) => !isUsable(s)).map((s) => s.section.name);
  if (bare.length > 0) throw new Error(`getHyperbolicMap: ${bare.join(', ')} has no H&E image with spots`);
  const model = await findModel(host.listModels(), request.modelId, 'getHyperbolicMap');
  if (model.mode === 'clip') {
    throw new Error(`getHyperbolicMap: ${model.name} is a clip model: its embeddings are not hyperbolic`);
  }
  const map = await inference.run(
    'map',
    'getHyperbolicMap',
    sections.map((s) => s.section),
    { model: modelRef(model), genes: request.genes === true },
  );
  return {
    modelId: model.id,
    curvature: map.curvature,
    projection: PROJECTION,
    sections: sections.map((s, i) => ({ sectionId: s.id, sectionName: s.section.name, ...map.sections[i] })),
  };
}

/** The model work of a map (in the inference worker): embeddings of the sections, then their disk layout. */
export async function computeMap(
  sections: Section[],
  params: MapParams,
  cache: EmbeddingCache,
  context: JobContext,
): Promise<MapOutput> {
  const { space, image, gene } = await cache.embed(params.model, sections, context, { genes: params.genes });
  context.report(finalPhase('mapping'));
  const c = space.curvature!;
  const genes = gene ?? sections.map(() => null);
  const groups = [...image.map((es) => es.embeddings), ...genes.filter((g): g is Matrix => g !== null)];
  const laid = diskLayout(groups, c);
  let next = image.length;
  return {
    curvature: c,
    sections: sections.map((_, i) => ({
      spotIndex: Array.from(image[i].spots),
      image: points(laid[i]),
      gene: genes[i] ? points(laid[next++]) : null,
    })),
  };
}
