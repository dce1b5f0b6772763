// Lorentz geometry: the golden vectors of docs/delst-method.md §2.2 (both curvatures), map identities, and analytic
// gradients against finite differences.
//
// Gradient checks: tf.grads runs in float32 on the 'cpu' backend; the finite differences are central differences
// (step 1e-5) of a float64 JS re-implementation of the same formulas (`ref` below, written without the clamps,
// which are inactive at the test points). That keeps the numerical side accurate to ~1e-9, so the tolerance only
// has to cover float32 rounding in the analytic gradient: |analytic - numeric| <= 2e-4 + 2e-3 |numeric|. The worst
// case observed uses about 3% of that (absolute errors ~5e-6).

import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { clipContrastive, hyperbolicContrastive } from '../../core/engine/losses.js';
import {
  distanceToOrigin,
  entailmentLoss,
  entailmentMatrix,
  EPS,
  expMap0,
  exteriorAngle,
  exteriorAnglePairwise,
  halfAperture,
  logMap0,
  lorentzInnerPairwise,
  pairwiseDistance,
  safeNorm,
  timeComponent,
} from '../../core/engine/lorentz.js';
import { SCALE, V_GENE, V_IMG } from './support/golden-batch.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

interface Golden {
  c: number;
  expImg: number[][];
  dist: number[][];
  cont: number;
  ext: number[];
  aper: number[];
  ent: number;
}

const GOLDEN: Golden[] = [
  {
    c: 1.0,
    expImg: [
      [0.319364, -0.21291, 0.532274],
      [1.663919, 0.55464, -0.970619],
      [-0.100215, 0.050108, 0.020043],
    ],
    dist: [
      [0.374301, 0.901027, 0.715685],
      [1.518286, 0.86209, 1.466615],
      [0.308409, 0.682287, 0.281483],
    ],
    cont: 0.747453,
    ext: [0.197775, 0.230579, 2.782374],
    aper: [0.941409, 0.324799, 0.671341],
    ent: 0.703678,
  },
  {
    c: 0.5,
    expImg: [
      [0.309591, -0.206394, 0.515984],
      [1.420196, 0.473399, -0.828448],
      [-0.100108, 0.050054, 0.020022],
    ],
    dist: [
      [0.374233, 0.889667, 0.711483],
      [1.512887, 0.861132, 1.456813],
      [0.308234, 0.682065, 0.281188],
    ],
    cont: 0.747126,
    ext: [0.193946, 0.208849, 2.779899],
    aper: [1.570655, 0.482987, 1.090844],
    ent: 0.563018,
  },
];

/** Runs fn in a tidy scope and returns the values of its tensor as a flat array. */
function values(fn: () => tf.Tensor): number[] {
  return Array.from(tf.tidy(fn).dataSync());
}

function expectClose(actual: number[], expected: number[], tol: number): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((a, i) => {
    const err = Math.abs(a - expected[i]);
    if (!(err <= tol)) throw new Error(`entry ${i}: got ${a}, expected ${expected[i]} (error ${err} > ${tol})`);
  });
}

/** Float64 re-implementation of the §2 formulas on plain arrays (clamps omitted: inactive at the test points). */
const ref = {
  dot: (a: number[], b: number[]) => a.reduce((s, ai, i) => s + ai * b[i], 0),
  norm: (a: number[]) => Math.sqrt(ref.dot(a, a)),
  time: (x: number[], c: number) => Math.sqrt(1 / c + ref.dot(x, x)),
  expMap0(v: number[], c: number): number[] {
    const r = Math.sqrt(c) * ref.norm(v);
    return v.map((t) => (t * Math.sinh(r)) / r);
  },
  dist: (x: number[], y: number[], c: number) =>
    Math.acosh(-c * (ref.dot(x, y) - ref.time(x, c) * ref.time(y, c))) / Math.sqrt(c),
  aper: (x: number[], c: number) => Math.asin(Math.min(1 - EPS, (2 * 0.1) / (Math.sqrt(c) * ref.norm(x)))),
  ext(x: number[], y: number[], c: number): number {
    const cxy = c * (ref.dot(x, y) - ref.time(x, c) * ref.time(y, c));
    return Math.acos((ref.time(y, c) + cxy * ref.time(x, c)) / (ref.norm(x) * Math.sqrt(cxy * cxy - 1)));
  },
  ent: (p: number[][], ch: number[][], c: number) =>
    p.reduce((s, pi, i) => s + Math.max(0, ref.ext(pi, ch[i], c) - ref.aper(pi, c)), 0) / p.length,
  /** Symmetric cross-entropy of logits[i][j] with the diagonal as target. */
  symmetricCE(logits: number[][]): number {
    const n = logits.length;
    const lse = (xs: number[]) => {
      const m = Math.max(...xs);
      return m + Math.log(xs.reduce((s, x) => s + Math.exp(x - m), 0));
    };
    let rows = 0;
    let cols = 0;
    for (let i = 0; i < n; i++) {
      rows += lse(logits[i]) - logits[i][i];
      cols += lse(logits.map((r) => r[i])) - logits[i][i];
    }
    return (rows + cols) / (2 * n);
  },
  cont: (img: number[][], gene: number[][], c: number, s: number) =>
    ref.symmetricCE(img.map((x) => gene.map((y) => -s * ref.dist(x, y, c)))),
};

/** Splits a flat array into rows of length d. */
function rows(flat: number[], d = 3): number[][] {
  return Array.from({ length: flat.length / d }, (_, i) => flat.slice(i * d, (i + 1) * d));
}

interface Arg {
  data: number[];
  shape: number[];
}
const mat = (m: number[][]): Arg => ({ data: m.flat(), shape: [m.length, m[0].length] });
const scal = (v: number): Arg => ({ data: [v], shape: [] });

/**
 * Compares tf.grads of a scalar function with central differences of its float64 reference and returns the largest
 * error relative to the tolerance (<= 1 passes).
 */
function gradCheck(tfFn: (...xs: tf.Tensor[]) => tf.Tensor, refFn: (...xs: number[][]) => number, args: Arg[]): number {
  const analytic = tf.tidy(() =>
    tf.grads((...xs: tf.Tensor[]) => tfFn(...xs))(args.map((a) => tf.tensor(a.data, a.shape))),
  );
  const grads = analytic.map((g) => Array.from(g.dataSync()));
  tf.dispose(analytic);
  const h = 1e-5;
  let worst = 0;
  args.forEach((arg, i) => {
    arg.data.forEach((_, k) => {
      const at = (delta: number) =>
        refFn(...args.map((a, j) => (j === i ? a.data.map((v, m) => (m === k ? v + delta : v)) : a.data)));
      const numeric = (at(h) - at(-h)) / (2 * h);
      const a = grads[i][k];
      expect(Number.isFinite(a)).toBe(true);
      worst = Math.max(worst, Math.abs(a - numeric) / (2e-4 + 2e-3 * Math.abs(numeric)));
    });
  });
  return worst;
}

/** Fixed pseudo-random weights in [-1, 1] so that a weighted sum exercises every output entry. */
function weights(n: number, seed = 1): number[] {
  let s = seed;
  return Array.from({ length: n }, () => {
    s = (s * 16807) % 2147483647;
    return (s / 2147483647) * 2 - 1;
  });
}

for (const g of GOLDEN) {
  describe(`golden vectors §2.2, c = ${g.c}`, () => {
    const TOL = 1e-5;
    const points = () => {
      const c = tf.scalar(g.c);
      return { c, img: expMap0(tf.tensor2d(V_IMG), c), gene: expMap0(tf.tensor2d(V_GENE), c) };
    };

    it('expMap0 of the image tangents', () => {
      expectClose(
        values(() => points().img),
        g.expImg.flat(),
        TOL,
      );
    });

    it('pairwise distance image x gene', () => {
      expectClose(
        values(() => {
          const { c, img, gene } = points();
          return pairwiseDistance(img, gene, c);
        }),
        g.dist.flat(),
        TOL,
      );
    });

    it('contrastive loss at the fixed scale 1/0.07', () => {
      expectClose(
        values(() => {
          const { c, img, gene } = points();
          return hyperbolicContrastive(img, gene, c, tf.scalar(SCALE));
        }),
        [g.cont],
        TOL,
      );
    });

    it('exterior angles gene -> image, row-paired and as the diagonal of the pairwise matrix', () => {
      const paired = values(() => {
        const { c, img, gene } = points();
        return exteriorAngle(gene, img, c);
      });
      expectClose(paired, g.ext, TOL);
      const pairwise = values(() => {
        const { c, img, gene } = points();
        return exteriorAnglePairwise(gene, img, c);
      });
      expectClose([pairwise[0], pairwise[4], pairwise[8]], g.ext, TOL);
    });

    it('half-apertures of the gene points', () => {
      const aper = values(() => {
        const { c, gene } = points();
        return halfAperture(gene, c);
      });
      // A saturated cone (2K / (sqrt(c)|x|) > 1) sits at the clamp: the golden value is MERU's asin(1 - 1e-8); ours,
      // with the float32-safe EPS = 1e-6 of §2.1, is asin(1 - 1e-6) rounded to float32 = 1.569373 (1.3e-3 lower).
      // Only c = 0.5, row 0 is saturated.
      const saturated = Math.asin(Math.fround(1 - EPS));
      const expected = g.aper.map((a) => (a > saturated ? saturated : a));
      expectClose(aper, expected, TOL);
      if (g.c === 0.5) expect(expected[0]).not.toBe(g.aper[0]);
    });

    it('entailment loss gene entails image', () => {
      expectClose(
        values(() => {
          const { c, img, gene } = points();
          return entailmentLoss(gene, img, c);
        }),
        [g.ent],
        TOL,
      );
    });

    it('entailmentMatrix diagonal is the row-paired violation', () => {
      const m = values(() => {
        const { c, img, gene } = points();
        return entailmentMatrix(gene, img, c);
      });
      const mean = (m[0] + m[4] + m[8]) / 3;
      expectClose([mean], [g.ent], TOL);
    });
  });
}

describe('map identities', () => {
  const tangents = [...V_IMG, ...V_GENE, [1e-4, -2e-4, 5e-5], [3, -4, 2], [0, 0, 0]];

  for (const c of [1.0, 0.5, 3.0]) {
    it(`logMap0(expMap0(v)) = v and d(O, expMap0(v)) = |v|, c = ${c}`, () => {
      const back = values(() => logMap0(expMap0(tf.tensor2d(tangents), c), c));
      // Relative float32 rounding, about 1e-7 of the largest coordinate.
      tangents.flat().forEach((v, i) => expect(Math.abs(back[i] - v)).toBeLessThan(1e-6 * (1 + Math.abs(v))));
      const d = values(() => distanceToOrigin(expMap0(tf.tensor2d(tangents), c), c));
      tangents.forEach((v, i) => expect(Math.abs(d[i] - ref.norm(v))).toBeLessThan(1e-6 * (1 + ref.norm(v))));
    });
  }

  it('distance to the origin agrees with pairwiseDistance to the zero point', () => {
    const c = 0.7;
    const x = V_IMG.map((v) => ref.expMap0(v, c));
    const viaPair = values(() => pairwiseDistance(tf.tensor2d(x), tf.zeros([1, 3]), c));
    const viaOrigin = values(() => distanceToOrigin(tf.tensor2d(x), c));
    expectClose(viaPair, viaOrigin, 1e-5);
  });

  it('time components put points on the hyperboloid: <x,x>_L = -1/c', () => {
    const c = 0.5;
    const x = tf.tensor2d(V_IMG.map((v) => ref.expMap0(v, c)));
    expectClose(
      values(() => tf.reshape(tf.sub(tf.square(timeComponent(x, c)), tf.sum(tf.square(x), 1)), [-1])),
      [2, 2, 2],
      1e-5,
    );
    const inner = values(() => lorentzInnerPairwise(x, x, c));
    expectClose([inner[0], inner[4], inner[8]], [-2, -2, -2], 1e-5);
    x.dispose();
  });

  it('exterior angle: ~0 beyond x on the ray O->x, ~pi between O and x', () => {
    const angles = values(() => {
      const x = tf.tensor2d([[0.5, 0.2, -0.1]]);
      return tf.concat([exteriorAngle(x, tf.mul(x, 3), 1), exteriorAngle(x, tf.mul(x, 0.3), 1)]);
    });
    expect(angles[0]).toBeLessThan(0.01);
    expect(angles[1]).toBeGreaterThan(Math.PI - 0.01);
  });

  it('safeNorm is sqrt(sum(x^2) + 1e-12)', () => {
    expectClose(
      values(() =>
        safeNorm(
          tf.tensor2d([
            [3, 4],
            [0, 0],
          ]),
        ),
      ),
      [5, 1e-6],
      1e-7,
    );
  });
});

describe('analytic gradients vs float64 central differences', () => {
  const X = V_IMG.map((v) => ref.expMap0(v, 1));
  const Y = V_GENE.map((v) => ref.expMap0(v, 1));
  const W9 = weights(9);
  const W3 = weights(3, 7);
  const wsum = (t: tf.Tensor, w: number[]) => tf.sum(tf.mul(t, tf.tensor(w, t.shape)));

  it('expMap0 (in v and c)', () => {
    const worst = gradCheck(
      (v, c) => wsum(expMap0(v as tf.Tensor2D, c as tf.Scalar), W9),
      (v, c) =>
        rows(v)
          .flatMap((r) => ref.expMap0(r, c[0]))
          .reduce((s, x, i) => s + x * W9[i], 0),
      [mat(V_IMG), scal(0.8)],
    );
    expect(worst).toBeLessThanOrEqual(1);
  });

  it('pairwiseDistance (in x, y and c)', () => {
    const worst = gradCheck(
      (x, y, c) => wsum(pairwiseDistance(x as tf.Tensor2D, y as tf.Tensor2D, c as tf.Scalar), W9),
      (x, y, c) =>
        rows(x)
          .flatMap((xi) => rows(y).map((yj) => ref.dist(xi, yj, c[0])))
          .reduce((s, d, i) => s + d * W9[i], 0),
      [mat(X), mat(Y), scal(0.8)],
    );
    expect(worst).toBeLessThanOrEqual(1);
  });

  it('exteriorAngle, row-paired and pairwise (in x, y and c)', () => {
    const paired = gradCheck(
      (x, y, c) => wsum(exteriorAngle(x as tf.Tensor2D, y as tf.Tensor2D, c as tf.Scalar), W3),
      (x, y, c) => {
        const ys = rows(y);
        return rows(x).reduce((s, xi, i) => s + ref.ext(xi, ys[i], c[0]) * W3[i], 0);
      },
      [mat(Y), mat(X), scal(0.8)],
    );
    expect(paired).toBeLessThanOrEqual(1);
    const pairwise = gradCheck(
      (x, y, c) => wsum(exteriorAnglePairwise(x as tf.Tensor2D, y as tf.Tensor2D, c as tf.Scalar), W9),
      (x, y, c) =>
        rows(x)
          .flatMap((xi) => rows(y).map((yj) => ref.ext(xi, yj, c[0])))
          .reduce((s, a, i) => s + a * W9[i], 0),
      [mat(Y), mat(X), scal(0.8)],
    );
    expect(pairwise).toBeLessThanOrEqual(1);
  });

  it('halfAperture (in x and c; unsaturated points)', () => {
    const big = X.map((r) => r.map((v) => v * 2));
    const worst = gradCheck(
      (x, c) => wsum(halfAperture(x as tf.Tensor2D, c as tf.Scalar), W3),
      (x, c) => rows(x).reduce((s, xi, i) => s + ref.aper(xi, c[0]) * W3[i], 0),
      [mat(big), scal(0.8)],
    );
    expect(worst).toBeLessThanOrEqual(1);
  });

  it('entailment loss from tangent vectors (in both tangents and c)', () => {
    const worst = gradCheck(
      (vg, vi, c) => {
        const cs = c as tf.Scalar;
        return entailmentLoss(expMap0(vg as tf.Tensor2D, cs), expMap0(vi as tf.Tensor2D, cs), cs);
      },
      (vg, vi, c) =>
        ref.ent(
          rows(vg).map((v) => ref.expMap0(v, c[0])),
          rows(vi).map((v) => ref.expMap0(v, c[0])),
          c[0],
        ),
      [mat(V_GENE), mat(V_IMG), scal(1.3)],
    );
    expect(worst).toBeLessThanOrEqual(1);
  });

  it('hyperbolic contrastive loss (in both tangents, c and the logit scale)', () => {
    const worst = gradCheck(
      (vi, vg, c, s) => {
        const cs = c as tf.Scalar;
        return hyperbolicContrastive(
          expMap0(vi as tf.Tensor2D, cs),
          expMap0(vg as tf.Tensor2D, cs),
          cs,
          s as tf.Scalar,
        );
      },
      (vi, vg, c, s) =>
        ref.cont(
          rows(vi).map((v) => ref.expMap0(v, c[0])),
          rows(vg).map((v) => ref.expMap0(v, c[0])),
          c[0],
          s[0],
        ),
      [mat(V_IMG), mat(V_GENE), scal(0.6), scal(5)],
    );
    expect(worst).toBeLessThanOrEqual(1);
  });

  it('CLIP contrastive loss (in both feature sets and the logit scale)', () => {
    const unit = (r: number[]) => r.map((v) => v / ref.norm(r));
    const worst = gradCheck(
      (a, b, s) => clipContrastive(a as tf.Tensor2D, b as tf.Tensor2D, s as tf.Scalar),
      (a, b, s) => {
        const bs = rows(b).map(unit);
        return ref.symmetricCE(rows(a).map((ai) => bs.map((bj) => s[0] * ref.dot(unit(ai), bj))));
      },
      [mat(V_IMG), mat(V_GENE), scal(5)],
    );
    expect(worst).toBeLessThanOrEqual(1);
  });
});

describe('finite gradients at zero vectors and identical points', () => {
  /** Every gradient of f with respect to its inputs, flattened. */
  function allGrads(f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[]): number[] {
    // Inputs a function ignores get a zero-weight term: tf.grads refuses inputs with no path to the output.
    const loss = (...xs: tf.Tensor[]) => tf.add(tf.sum(f(...xs)), tf.mul(0, tf.addN(xs.map((x) => tf.sum(x)))));
    return tf
      .tidy(() => tf.grads(loss)(inputs))
      .flatMap((g) => {
        const v = Array.from(g.dataSync());
        g.dispose();
        return v;
      });
  }
  const allFinite = (xs: number[]) => xs.every(Number.isFinite);

  const zeros = () => tf.zeros([2, 3]);
  const pts = () => tf.tensor2d([V_IMG[0], V_IMG[1]]);
  const cases: [string, (x: tf.Tensor2D, y: tf.Tensor2D, c: tf.Scalar) => tf.Tensor][] = [
    ['expMap0', (x, _y, c) => expMap0(x, c)],
    ['logMap0', (x, _y, c) => logMap0(x, c)],
    ['distanceToOrigin', (x, _y, c) => distanceToOrigin(x, c)],
    ['halfAperture', (x, _y, c) => halfAperture(x, c)],
    ['pairwiseDistance', (x, y, c) => pairwiseDistance(x, y, c)],
    ['exteriorAngle', (x, y, c) => exteriorAngle(x, y, c)],
    ['exteriorAnglePairwise', (x, y, c) => exteriorAnglePairwise(x, y, c)],
    ['entailmentLoss', (x, y, c) => entailmentLoss(x, y, c)],
    ['entailmentMatrix', (x, y, c) => entailmentMatrix(x, y, c)],
    ['hyperbolicContrastive', (x, y, c) => hyperbolicContrastive(x, y, c, SCALE)],
    ['clipContrastive', (x, y) => clipContrastive(x, y, SCALE)],
  ];

  for (const [name, f] of cases) {
    it(name, () => {
      const fn = (x: tf.Tensor, y: tf.Tensor, c: tf.Tensor) => f(x as tf.Tensor2D, y as tf.Tensor2D, c as tf.Scalar);
      for (const c of [1, 0.5]) {
        // All-zero inputs (both arguments at the origin, or the zero tangent).
        expect(allFinite(allGrads(fn, [zeros(), zeros(), tf.scalar(c)]))).toBe(true);
        // Identical points: x = y (same tensor values, separate inputs), also from tangents through expMap0.
        expect(allFinite(allGrads(fn, [pts(), pts(), tf.scalar(c)]))).toBe(true);
        const composed = (v: tf.Tensor, w: tf.Tensor, cs: tf.Tensor) =>
          fn(expMap0(v as tf.Tensor2D, cs as tf.Scalar), expMap0(w as tf.Tensor2D, cs as tf.Scalar), cs);
        expect(allFinite(allGrads(composed, [zeros(), zeros(), tf.scalar(c)]))).toBe(true);
        expect(allFinite(allGrads(composed, [pts(), pts(), tf.scalar(c)]))).toBe(true);
        // Forward values are finite too.
        expect(allFinite(values(() => fn(pts(), pts(), tf.scalar(c))))).toBe(true);
        expect(allFinite(values(() => fn(zeros(), zeros(), tf.scalar(c))))).toBe(true);
      }
    });
  }
});
