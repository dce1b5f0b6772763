// How gene values map onto a colour map: which values (raw counts or log-normalised), linear or log scale, and
// the limits, whose defaults are 0 and the 99th percentile over the spots on show.

import type { ColourMapName } from './colour-maps.js';

export type GeneValueKind = 'raw' | 'normalised';
export type ScaleKind = 'linear' | 'log';

export interface GeneScale {
  readonly kind: ScaleKind;
  readonly min: number;
  readonly max: number;
  readonly map: ColourMapName;
}

export const DEFAULT_PERCENTILE = 99;

/**
 * Default limits: 0 and the 99th percentile of the values where `include` is 1; the maximum where that
 * percentile is 0 (a gene seen in under 1% of spots); 1 where all are 0.
 */
export function defaultLimits(values: Float32Array, include: Uint8Array): { min: number; max: number } {
  const picked = new Float32Array(values.length);
  let n = 0;
  let largest = 0;
  for (let i = 0; i < values.length; i++) {
    if (!include[i]) continue;
    picked[n++] = values[i];
    if (values[i] > largest) largest = values[i];
  }
  let max = n === 0 ? 0 : quantile(picked.subarray(0, n), DEFAULT_PERCENTILE / 100);
  if (!(max > 0)) max = largest > 0 ? largest : 1;
  return { min: 0, max };
}

/** The q-quantile (nearest rank) of `values`, reordering them in place: O(n) on average (quickselect). */
export function quantile(values: Float32Array, q: number): number {
  const k = Math.min(values.length - 1, Math.max(0, Math.ceil(q * values.length) - 1));
  let lo = 0;
  let hi = values.length - 1;
  while (lo < hi) {
    const pivot = values[(lo + hi) >> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (values[i] < pivot) i++;
      while (values[j] > pivot) j--;
      if (i <= j) {
        const t = values[i];
        values[i] = values[j];
        values[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else break;
  }
  return values[k];
}

/** Where a value falls between the limits, 0..1 (clamped). Log scale: log1p, so 0 counts stay finite. */
export function scalePosition(value: number, scale: GeneScale): number {
  return positionOf(scale)(value);
}

/** scalePosition with the scale's constants worked out once, for colouring many spots. */
export function positionOf(scale: GeneScale): (value: number) => number {
  const log = scale.kind === 'log';
  const f = (v: number) => (log ? Math.log1p(Math.max(v, 0)) : Math.max(v, 0));
  const lo = f(scale.min);
  const hi = f(scale.max);
  if (!(hi > lo)) return (value) => (value > scale.min ? 1 : 0);
  const span = hi - lo;
  return (value) => {
    const t = (f(value) - lo) / span;
    return t < 0 ? 0 : t > 1 ? 1 : t;
  };
}

/** The value at position t (0..1) of the scale: the inverse of scalePosition, for colour bar ticks. */
export function scaleValueAt(t: number, scale: GeneScale): number {
  if (scale.kind === 'log') {
    const lo = Math.log1p(Math.max(scale.min, 0));
    const hi = Math.log1p(Math.max(scale.max, 0));
    return Math.expm1(lo + t * (hi - lo));
  }
  return scale.min + t * (scale.max - scale.min);
}

/** A limit as people read it: 3 significant digits, no exponent for the values counts take. */
export function formatLimit(value: number): string {
  if (value === 0) return '0';
  const abs = Math.abs(value);
  if (abs >= 1000) return Math.round(value).toLocaleString('en-US');
  return String(Number(value.toPrecision(3)));
}
