// Lorentz-model (hyperboloid) geometry for DELST, over tfjs tensors: one small function per operation.
//
// Conventions (docs/delst-method.md §2): the curvature is -c with c > 0, passed as a tf.Scalar (it is learnable) or
// a plain number. A point is stored by its space components x in R^D only; its time component
// x0 = sqrt(1/c + |x|^2) is implicit, and the origin is O = (0, ..., 0, 1/sqrt(c)). Batches are B x D.
//
// Float32 safety (§2.1): MERU's eps = 1e-8 vanishes next to 1 in float32, so the acosh/asin/acos clamps use
// EPS = 1e-6 (their gradient at the clamp edge is then about 707, not infinite), and every differentiated norm is
// the safe norm sqrt(sum(x^2) + 1e-12), whose gradient is finite (zero) at the zero vector. With both, forward
// values and gradients stay finite at zero vectors and at identical points.
//
// These functions allocate intermediate tensors and do not tidy: call them inside tf.tidy or tf.variableGrads.

import * as tf from '@tensorflow/tfjs';

/** Clamp margin for acosh, asin and acos arguments (and for sinh's argument floor), float32-safe. */
export const EPS = 1e-6;
/** Added under the square root of the safe norm. */
export const NORM_EPS = 1e-12;
/** Guard added to denominators that are already bounded away from 0; keeps MERU's 1e-8. */
export const DEN_EPS = 1e-8;
/** Largest sinh argument in the exponential map: asinh(2^15) = 11.0904, as MERU (|x| stays below 2^15/sqrt(c)). */
export const SINH_MAX = Math.asinh(2 ** 15);
/** Entailment-cone constant K (MERU's min_radius): the aperture saturates at pi/2 for |x| <= 2K/sqrt(c). */
export const MIN_RADIUS = 0.1;

/** A curvature parameter c > 0 (the space has curvature -c). */
export type Curvature = tf.Scalar | number;

/** The curvature as a scalar tensor. */
function asScalar(c: Curvature): tf.Scalar {
  return typeof c === 'number' ? tf.scalar(c) : c;
}

/** Euclidean norm over the last axis as sqrt(sum(x^2) + 1e-12): tf.norm's gradient is NaN at the zero vector. */
export function safeNorm(x: tf.Tensor, keepDims = false): tf.Tensor {
  return tf.sqrt(tf.add(tf.sum(tf.square(x), -1, keepDims), NORM_EPS));
}

/** Squared norms as a column, B x 1. */
function squaredNormColumn(x: tf.Tensor2D): tf.Tensor2D {
  return tf.sum(tf.square(x), -1, true) as tf.Tensor2D;
}

/** Time components as a column, B x 1: x0 = sqrt(1/c + |x|^2) (no clamp: 1/c > 0). */
function timeColumn(x: tf.Tensor2D, c: Curvature): tf.Tensor2D {
  return tf.sqrt(tf.add(tf.div(1, asScalar(c)), squaredNormColumn(x))) as tf.Tensor2D;
}

/** Time component of each row, B: x0 = sqrt(1/c + |x|^2), so that <x,x>_L = -1/c. */
export function timeComponent(x: tf.Tensor2D, c: Curvature): tf.Tensor1D {
  return tf.reshape(timeColumn(x, c), [-1]);
}

/**
 * Exponential map at the origin, tangent v -> hyperboloid: x = sinh(sqrt(c)|v|) v / (sqrt(c)|v|). The sinh argument is
 * clamped to [EPS, asinh(2^15)] (no float32 overflow; below EPS, sinh(r)/r = 1 is used) and the divisor to >= EPS.
 */
export function expMap0(v: tf.Tensor2D, c: Curvature): tf.Tensor2D {
  const r = tf.mul(tf.sqrt(asScalar(c)), safeNorm(v, true));
  const scale = tf.div(tf.sinh(tf.clipByValue(r, EPS, SINH_MAX)), tf.maximum(r, EPS));
  return tf.mul(v, scale);
}

/**
 * Logarithmic map at the origin, hyperboloid -> tangent: v = asinh(sqrt(c)|x|) x / (sqrt(c)|x|). This equals MERU's
 * acosh(sqrt(c) x0) x / (sqrt(c)|x|) because sinh(sqrt(c)|v|) = sqrt(c)|x|, but needs no clamp and keeps float32
 * precision near the origin, where acosh(1 + tiny) loses half the digits. Safe norm: z >= sqrt(c)*1e-6 > 0.
 */
export function logMap0(x: tf.Tensor2D, c: Curvature): tf.Tensor2D {
  const z = tf.mul(tf.sqrt(asScalar(c)), safeNorm(x, true));
  return tf.mul(x, tf.div(tf.asinh(z), z));
}

/**
 * Pairwise Lorentz inner product <x,y>_L = x.y - x0 y0, B1 x D and B2 x D -> B1 x B2 (c = 1 unless given; c fixes
 * the time components).
 */
export function lorentzInnerPairwise(x: tf.Tensor2D, y: tf.Tensor2D, c: Curvature = 1): tf.Tensor2D {
  const spatial = tf.matMul(x, y, false, true);
  const time = tf.mul(timeColumn(x, c), tf.reshape(timeColumn(y, c), [1, -1]));
  return tf.sub(spatial, time);
}

/**
 * Excess of each row's scaled time component over the origin's, B x 1: sqrt(c) x0 - 1 = c|x|^2 / (1 + sqrt(1 + c|x|^2)),
 * written without the cancellation of sqrt(c) x0 - 1 in float32.
 */
function timeExcessColumn(x: tf.Tensor2D, c: tf.Scalar): tf.Tensor2D {
  const cx2 = tf.mul(c, squaredNormColumn(x));
  return tf.div(cx2, tf.add(1, tf.sqrt(tf.add(1, cx2))));
}

/**
 * cosh(sqrt(c) d(x,y)) - 1 = -c<x,y>_L - 1 from the time excesses xm, ym and the dot product x.y (broadcastable):
 * xm ym + xm + ym - c x.y. Forming -c<x,y>_L first and subtracting 1 loses ~7 bits in float32 at distances ~0.3.
 */
function coshDistanceMinusOne(xm: tf.Tensor, ym: tf.Tensor, dot: tf.Tensor, c: tf.Scalar): tf.Tensor {
  return tf.sub(tf.add(tf.add(tf.mul(xm, ym), xm), ym), tf.mul(c, dot));
}

/**
 * acosh(1 + a) = log1p(a + sqrt(a (a + 2))) for a = cosh(sqrt(c) d) - 1, with a clamped to >= EPS (the acosh argument
 * to >= 1 + EPS): rounding makes a <= 0 for (near-)identical points, where the derivative is infinite.
 */
function acoshOnePlus(a: tf.Tensor): tf.Tensor {
  const safe = tf.maximum(a, EPS);
  return tf.log1p(tf.add(safe, tf.sqrt(tf.mul(safe, tf.add(safe, 2)))));
}

/**
 * Pairwise geodesic distance d(x,y) = acosh(-c<x,y>_L) / sqrt(c), B1 x B2. The acosh argument is clamped to >= 1 + EPS,
 * so distances below sqrt(2 EPS / c) = 1.4e-3 / sqrt(c) are not resolved (their gradient is 0).
 */
export function pairwiseDistance(x: tf.Tensor2D, y: tf.Tensor2D, c: Curvature): tf.Tensor2D {
  const cs = asScalar(c);
  const ym = tf.reshape(timeExcessColumn(y, cs), [1, -1]);
  const a = coshDistanceMinusOne(timeExcessColumn(x, cs), ym, tf.matMul(x, y, false, true), cs);
  return tf.div(acoshOnePlus(a), tf.sqrt(cs)) as tf.Tensor2D;
}

/**
 * Geodesic distance of each row from the origin, B: asinh(sqrt(c)|x|)/sqrt(c), equal to acosh(sqrt(c) x0)/sqrt(c) and
 * to |v| when x = expMap0(v); the asinh form needs no clamp and stays accurate near the origin.
 */
export function distanceToOrigin(x: tf.Tensor2D, c: Curvature): tf.Tensor1D {
  const sc = tf.sqrt(asScalar(c));
  return tf.div(tf.asinh(tf.mul(sc, safeNorm(x))), sc) as tf.Tensor1D;
}

/**
 * Half-aperture of the entailment cone at each row, B: asin(2K / (sqrt(c)|x|)). The argument is clamped to
 * [-1 + EPS, 1 - EPS] (near the origin it exceeds 1 and the cone saturates at about pi/2; asin' is infinite at 1).
 */
export function halfAperture(x: tf.Tensor2D, c: Curvature, K = MIN_RADIUS): tf.Tensor1D {
  const den = tf.add(tf.mul(tf.sqrt(asScalar(c)), safeNorm(x)), DEN_EPS);
  return tf.asin(tf.clipByValue(tf.div(2 * K, den), -1 + EPS, 1 - EPS)) as tf.Tensor1D;
}

/**
 * Exterior angle at x of the triangle O-x-y from the time excesses xm, ym, a = cosh(sqrt(c) d(x,y)) - 1 and |x|
 * (broadcastable): acos((y0 + c<x,y>_L x0) / (|x| sqrt((c<x,y>_L)^2 - 1))), with y0 + c<x,y>_L x0 written as
 * (ym - xm)/sqrt(c) - a x0 and (c<x,y>_L)^2 - 1 as a (a + 2) to avoid float32 cancellation. a (a + 2) is floored at EPS
 * (it is ~0 for identical points, where sqrt' is infinite) and the acos argument clamped to [-1 + EPS, 1 - EPS].
 */
function exteriorAngleFromParts(xm: tf.Tensor, ym: tf.Tensor, a: tf.Tensor, xNorm: tf.Tensor, c: tf.Scalar): tf.Tensor {
  const sc = tf.sqrt(c);
  const xTime = tf.div(tf.add(1, xm), sc);
  const num = tf.sub(tf.div(tf.sub(ym, xm), sc), tf.mul(a, xTime));
  const sinhTerm = tf.sqrt(tf.maximum(tf.mul(a, tf.add(a, 2)), EPS));
  const den = tf.add(tf.mul(xNorm, sinhTerm), DEN_EPS);
  return tf.acos(tf.clipByValue(tf.div(num, den), -1 + EPS, 1 - EPS));
}

/**
 * Exterior angle at x of the triangle O-x-y, row-paired (x_i with y_i), B, in (0, pi): ~0 when y lies on the ray
 * from O through x beyond x, ~pi when y lies between O and x.
 */
export function exteriorAngle(x: tf.Tensor2D, y: tf.Tensor2D, c: Curvature): tf.Tensor1D {
  const cs = asScalar(c);
  const xm = timeExcessColumn(x, cs);
  const ym = timeExcessColumn(y, cs);
  const a = coshDistanceMinusOne(xm, ym, tf.sum(tf.mul(x, y), -1, true), cs);
  return tf.reshape(exteriorAngleFromParts(xm, ym, a, safeNorm(x, true), cs), [-1]);
}

/** Exterior angle for every (parent row x_i, child column y_j) pair, B1 x B2: the pairwise form of exteriorAngle. */
export function exteriorAnglePairwise(x: tf.Tensor2D, y: tf.Tensor2D, c: Curvature): tf.Tensor2D {
  const cs = asScalar(c);
  const xm = timeExcessColumn(x, cs);
  const ym = tf.reshape(timeExcessColumn(y, cs), [1, -1]);
  const a = coshDistanceMinusOne(xm, ym, tf.matMul(x, y, false, true), cs);
  return exteriorAngleFromParts(xm, ym, a, safeNorm(x, true), cs) as tf.Tensor2D;
}

/** Row-paired entailment loss mean_i max(0, ext(p_i, c_i) - aper(p_i)): zero iff each child lies in its parent's cone. */
export function entailmentLoss(parent: tf.Tensor2D, child: tf.Tensor2D, c: Curvature, K = MIN_RADIUS): tf.Scalar {
  return tf.mean(tf.relu(tf.sub(exteriorAngle(parent, child, c), halfAperture(parent, c, K))));
}

/** Entailment violation max(0, ext(p_i, c_j) - aper(p_i)) for every parent row i and child column j, B1 x B2. */
export function entailmentMatrix(parent: tf.Tensor2D, child: tf.Tensor2D, c: Curvature, K = MIN_RADIUS): tf.Tensor2D {
  const aperture = tf.reshape(halfAperture(parent, c, K), [-1, 1]);
  return tf.relu(tf.sub(exteriorAnglePairwise(parent, child, c), aperture)) as tf.Tensor2D;
}
