// Annotation helpers for the viewer: which spots a lasso or a brush stroke takes, in slide pixels.

import type { SpotGrid } from './spot-grid.js';

/** The label column the core gives a section's annotations (ANNOTATION_COLUMN in core/api/api.ts). */
export const ANNOTATION_COLUMN = 'annotations';

export type AnnotationTool = 'click' | 'brush' | 'lasso' | 'polygon';

/** Even-odd point in polygon (a ring, closed or not). */
export function pointInRing(x: number, y: number, ring: readonly (readonly [number, number])[]): boolean {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Spots (among those `accept` takes) whose centres fall inside a ring, in slide pixels. */
export function spotsInRing(
  x: ArrayLike<number>,
  y: ArrayLike<number>,
  ring: readonly (readonly [number, number])[],
  accept: (spot: number) => boolean,
): number[] {
  if (ring.length < 3) return [];
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const [px, py] of ring) {
    x0 = Math.min(x0, px);
    x1 = Math.max(x1, px);
    y0 = Math.min(y0, py);
    y1 = Math.max(y1, py);
  }
  const inside: number[] = [];
  for (let i = 0; i < x.length; i++) {
    const [sx, sy] = [x[i], y[i]];
    if (sx < x0 || sx > x1 || sy < y0 || sy > y1) continue;
    if (pointInRing(sx, sy, ring) && accept(i)) inside.push(i);
  }
  return inside;
}

/**
 * Spots a brush touches between two pointer positions (slide pixels): centres within `reach` of the segment,
 * sampled every half reach so a fast stroke leaves no gaps. Adds them to `into`.
 */
export function brushSegment(
  grid: SpotGrid,
  from: { x: number; y: number },
  to: { x: number; y: number },
  reach: number,
  accept: (spot: number) => boolean,
  into: Set<number>,
): void {
  const length = Math.hypot(to.x - from.x, to.y - from.y);
  const steps = Math.max(1, Math.ceil(length / Math.max(reach / 2, 1e-9)));
  for (let k = 0; k <= steps; k++) {
    const t = k / steps;
    grid.within(from.x + (to.x - from.x) * t, from.y + (to.y - from.y) * t, reach, (spot) => {
      if (accept(spot)) into.add(spot);
    });
  }
}
