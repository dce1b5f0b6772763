// The Poincaré-disk map (issue 5): radii of known hyperboloid points against hand-computed values, every point inside
// the unit disk at its exact radius, angles from the principal axes of the directions; and through the StudioApi on
// the demo (HER2ST B4) with the bundled base model.

import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diskLayout, poincareRadii } from '../../core/api/hyperbolic-map.js';
import { Studio } from '../../core/api/studio.js';
import type { Matrix } from '../../core/eval/matrix.js';
import { demoPath } from '../../core/resources.js';

function matrix(rows: number[][]): Matrix {
  return { rows: rows.length, cols: rows[0].length, data: Float64Array.from(rows.flat()) };
}

describe('poincareRadii', () => {
  it('maps known Lorentz points to their hand-computed Poincaré norms', () => {
    // c = 1, |x| = 3/4: x0 = sqrt(1 + 9/16) = 5/4, |u| = (3/4) / (1 + 5/4) = 1/3.
    expect(poincareRadii(matrix([[0.75, 0, 0]]), 1)[0]).toBeCloseTo(1 / 3, 14);
    expect(poincareRadii(matrix([[0.6, 0, -0.45]]), 1)[0]).toBeCloseTo(1 / 3, 14);
    // c = 4, |x| = 2/3: sqrt(c)|x| = 4/3, sqrt(c) x0 = 5/3, |u| = (4/3) / (1 + 5/3) = 1/2.
    expect(poincareRadii(matrix([[0, 2 / 3, 0]]), 4)[0]).toBeCloseTo(1 / 2, 14);
    // The origin is the centre; a far point stays inside the disk.
    expect(poincareRadii(matrix([[0, 0, 0]]), 2)[0]).toBe(0);
    const far = poincareRadii(matrix([[1e6, 0, 0]]), 1)[0];
    expect(far).toBeLessThan(1);
    expect(far).toBeGreaterThan(0.999999);
  });

  it('refuses a curvature that is not positive', () => {
    expect(() => poincareRadii(matrix([[1, 0]]), 0)).toThrow(/curvature/);
  });
});

describe('diskLayout', () => {
  // Two groups in 3-D with directions +-e1 (strong spread) and +-e2 (weaker) at several distances from the origin.
  const image = matrix([
    [3, 0, 0],
    [-3, 0, 0],
    [0.5, 0, 0],
    [-0.5, 0, 0],
    [0, 1, 0],
  ]);
  const gene = matrix([
    [0, -1, 0],
    [0, 0.2, 0],
    [0, -0.2, 0],
  ]);
  const [a, b] = diskLayout([image, gene], 1);

  it('puts every point inside the unit disk at its exact Poincaré radius', () => {
    for (const [group, laid] of [
      [image, a],
      [gene, b],
    ] as const) {
      const radii = poincareRadii(group, 1);
      for (let i = 0; i < group.rows; i++) {
        expect(laid.radius[i]).toBeCloseTo(radii[i], 14);
        expect(Math.hypot(laid.x[i], laid.y[i])).toBeCloseTo(radii[i], 12);
        expect(laid.radius[i]).toBeLessThan(1);
      }
    }
    // Farther from the origin, nearer the rim: |x| = 3 lies outside |x| = 0.5 on the same axis.
    expect(a.radius[0]).toBeGreaterThan(a.radius[2]);
  });

  it('gives opposite directions opposite angles, and one angle to one direction', () => {
    const angle = (p: { x: Float64Array; y: Float64Array }, i: number) => Math.atan2(p.y[i], p.x[i]);
    const apart = (s: number, t: number) => Math.abs(Math.atan2(Math.sin(s - t), Math.cos(s - t)));
    expect(apart(angle(a, 0), angle(a, 1))).toBeCloseTo(Math.PI, 6);
    expect(apart(angle(a, 0), angle(a, 2))).toBeCloseTo(0, 9);
    expect(apart(angle(a, 4), angle(b, 0))).toBeCloseTo(Math.PI, 6);
    expect(apart(angle(a, 4), angle(b, 1))).toBeCloseTo(0, 9);
    // e1 and e2 are orthogonal in 3-D and stay a right angle apart in the disk.
    expect(apart(angle(a, 0), angle(a, 4))).toBeCloseTo(Math.PI / 2, 6);
  });
});

describe('getHyperbolicMap with the base model', () => {
  let studio: Studio;
  let demo: string;

  beforeAll(async () => {
    studio = new Studio({ cacheDir: join(tmpdir(), 'delst-hyperbolic-test-unused') });
    demo = (await studio.openPath(demoPath())).opened[0].id;
  });

  afterAll(async () => {
    await studio?.shutdown();
  });

  it('maps every in-tissue spot, image and gene embeddings, inside the disk at their radii', async () => {
    const spots = await studio.getSpots(demo);
    const map = await studio.getHyperbolicMap([demo], { modelId: 'base', genes: true });
    expect(map.modelId).toBe('base');
    expect(map.curvature).toBeGreaterThan(0);
    expect(map.projection).toMatch(/radius/);
    const [section] = map.sections;
    const inside = spots.inTissue.flatMap((v, i) => (v ? [i] : []));
    expect(section.spotIndex).toEqual(inside);
    for (const points of [section.image, section.gene!]) {
      expect(points.radius).toHaveLength(inside.length);
      points.radius.forEach((r, i) => {
        expect(r).toBeGreaterThan(0);
        expect(r).toBeLessThan(1);
        expect(Math.hypot(points.x[i], points.y[i])).toBeCloseTo(r, 4);
      });
    }
    // The two modalities are different embeddings, not one copied.
    expect(section.gene!.radius).not.toEqual(section.image.radius);
    const imageOnly = await studio.getHyperbolicMap([demo], { modelId: 'base' });
    expect(imageOnly.sections[0].gene).toBeNull();
    expect(imageOnly.sections[0].image.radius).toEqual(section.image.radius);
  });

  it('names the errors', async () => {
    await expect(studio.getHyperbolicMap([], { modelId: 'base' })).rejects.toThrow(/non-empty array/);
    await expect(studio.getHyperbolicMap(['s99'], { modelId: 'base' })).rejects.toThrow(/no open section/);
    await expect(studio.getHyperbolicMap([demo], { modelId: 'nope' })).rejects.toThrow(/no model with id nope/);
  });
});
