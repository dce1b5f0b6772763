// The viewer's pure parts, without a browser: colour limits and scales, colour-map tables, picking, scale bars.

import { describe, expect, it } from 'vitest';
import { COLOUR_MAP_NAMES, COLOUR_MAPS, colourLut, LUT_SIZE } from '../../renderer/src/colour-maps.js';
import {
  defaultLimits,
  formatLimit,
  positionOf,
  quantile,
  scalePosition,
  scaleValueAt,
  type GeneScale,
} from '../../renderer/src/gene-scale.js';
import { niceLength } from '../../renderer/src/scale-length.js';
import { SpotGrid } from '../../renderer/src/spot-grid.js';

function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    return a / 2 ** 32;
  };
}

describe('gene colour scales', () => {
  it('finds quantiles by nearest rank, as sorting would', () => {
    const random = seeded(7);
    for (const n of [1, 2, 3, 10, 101, 1000]) {
      const values = Float32Array.from({ length: n }, () => Math.floor(random() * 20));
      const sorted = [...values].sort((a, b) => a - b);
      for (const q of [0, 0.5, 0.9, 0.99, 1]) {
        const expected = sorted[Math.max(0, Math.ceil(q * n) - 1)];
        expect(quantile(Float32Array.from(values), q), `n=${n} q=${q}`).toBe(expected);
      }
    }
  });

  it('defaults to 0 and the 99th percentile of the spots on show, falling back to the maximum', () => {
    const values = Float32Array.from({ length: 200 }, (_, i) => i);
    const all = new Uint8Array(200).fill(1);
    expect(defaultLimits(values, all)).toEqual({ min: 0, max: 197 });
    // Spots not on show do not count.
    const firstHalf = Uint8Array.from({ length: 200 }, (_, i) => (i < 100 ? 1 : 0));
    expect(defaultLimits(values, firstHalf).max).toBe(98);
    // A gene in under 1% of spots: the 99th percentile is 0, the maximum is used.
    const rare = new Float32Array(1000);
    rare[3] = 7;
    expect(defaultLimits(rare, new Uint8Array(1000).fill(1)).max).toBe(7);
    expect(defaultLimits(new Float32Array(10), new Uint8Array(10).fill(1)).max).toBe(1);
  });

  it('maps values to 0..1, linearly or through log1p, clamped at the limits', () => {
    const linear: GeneScale = { kind: 'linear', min: 0, max: 10, map: 'viridis' };
    expect(scalePosition(5, linear)).toBe(0.5);
    expect(scalePosition(-3, linear)).toBe(0);
    expect(scalePosition(25, linear)).toBe(1);
    const log: GeneScale = { kind: 'log', min: 0, max: 99, map: 'magma' };
    expect(scalePosition(9, log)).toBeCloseTo(Math.log(10) / Math.log(100), 12);
    for (const scale of [linear, log, { ...linear, min: 2, max: 7 }]) {
      const position = positionOf(scale);
      for (const t of [0, 0.25, 0.5, 1]) expect(position(scaleValueAt(t, scale))).toBeCloseTo(t, 9);
    }
    // Equal limits: a step at the limit.
    const flat: GeneScale = { kind: 'linear', min: 3, max: 3, map: 'viridis' };
    expect([scalePosition(2, flat), scalePosition(4, flat)]).toEqual([0, 1]);
  });

  it('formats limits to 3 significant digits', () => {
    expect([0, 1.6774, 12.34, 0.000123, 2500.4].map(formatLimit)).toEqual(['0', '1.68', '12.3', '0.000123', '2,500']);
  });
});

describe('colour maps', () => {
  it('expand their stops into 256-entry tables that start and end on the first and last stop', () => {
    for (const name of COLOUR_MAP_NAMES) {
      const lut = colourLut(name);
      expect(lut).toHaveLength(LUT_SIZE * 4);
      const hex = (k: number) => `#${[0, 1, 2].map((c) => lut[k * 4 + c].toString(16).padStart(2, '0')).join('')}`;
      const stops = COLOUR_MAPS[name];
      expect(hex(0)).toBe(stops[0]);
      expect(hex(LUT_SIZE - 1)).toBe(stops.at(-1));
      expect(lut.filter((_, i) => i % 4 === 3).every((a) => a === 255)).toBe(true);
    }
  });

  it('are perceptually ordered: lightness rises along viridis, magma and cividis', () => {
    // Relative luminance (sRGB, linearised) as a proxy for lightness.
    const lin = (c: number) => ((c /= 255) <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
    for (const name of COLOUR_MAP_NAMES) {
      const lut = colourLut(name);
      let previous = -1;
      for (let k = 0; k < LUT_SIZE; k += 16) {
        const y = 0.2126 * lin(lut[k * 4]) + 0.7152 * lin(lut[k * 4 + 1]) + 0.0722 * lin(lut[k * 4 + 2]);
        expect(y, `${name} at ${k}`).toBeGreaterThan(previous);
        previous = y;
      }
    }
  });
});

describe('SpotGrid', () => {
  it('picks the nearest accepted spot within the radius, as a full scan does', () => {
    const random = seeded(11);
    const n = 5000;
    const x = Float32Array.from({ length: n }, () => random() * 10_000);
    const y = Float32Array.from({ length: n }, () => random() * 8000);
    const grid = new SpotGrid(x, y);
    const accept = (i: number) => i % 7 !== 0;
    for (let probe = 0; probe < 500; probe++) {
      const [px, py] = [random() * 10_400 - 200, random() * 8400 - 200];
      const radius = [5, 60, 400][probe % 3];
      let best = -1;
      let bestD = radius * radius;
      for (let i = 0; i < n; i++) {
        const d = (x[i] - px) ** 2 + (y[i] - py) ** 2;
        if (d <= bestD && accept(i)) [best, bestD] = [i, d];
      }
      const found = grid.nearest(px, py, radius, accept);
      if (best < 0) expect(found).toBe(-1);
      else expect((x[found] - px) ** 2 + (y[found] - py) ** 2).toBe(bestD);
    }
  });

  it('copes with no spots and with spots all in one place', () => {
    expect(new SpotGrid(new Float32Array(0), new Float32Array(0)).nearest(0, 0, 10, () => true)).toBe(-1);
    const same = new SpotGrid(Float32Array.of(5, 5, 5), Float32Array.of(5, 5, 5));
    expect(same.nearest(6, 5, 2, (i) => i === 2)).toBe(2);
  });
});

describe('scale bar length', () => {
  it('is the longest 1-2-5 length in microns that fits', () => {
    expect(niceLength(0.118, 140)).toEqual({ microns: 1000, px: 118 });
    expect(niceLength(1, 140)).toEqual({ microns: 100, px: 100 });
    expect(niceLength(0.5, 140)?.microns).toBe(200);
    expect(niceLength(3, 140)?.microns).toBe(20);
    expect(niceLength(500, 140)).toBeNull();
  });
});
