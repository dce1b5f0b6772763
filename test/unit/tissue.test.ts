// Tissue detection (core/slides/tissue.ts): synthetic slides where the answer is known, and HER2ST sections where
// the ST array tells: the spots under tissue are in spots.tsv, and the array positions missing from it (the array
// is 33 x 35 positions, mapped to pixels by an affine fit of the listed ones) are out of tissue.

import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { detectTissue, isTissueAt, tissueFromRgb } from '../../core/slides/tissue.js';
import { Rng } from '../../core/engine/random.js';

const HER2ST = resolve(import.meta.dirname, '../../../shared/data/her2st');

/** A glass-coloured raster with grainy H&E-coloured discs. */
function slide(
  width: number,
  height: number,
  discs: { x: number; y: number; r: number }[],
  glass: [number, number, number] = [236, 232, 238],
): Uint8Array {
  const rng = new Rng(7);
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = 3 * (y * width + x);
      const inside = discs.some((d) => (x - d.x) ** 2 + (y - d.y) ** 2 <= d.r * d.r);
      // Glass: flat with a little sensor noise; tissue: purple with nuclei-like grain.
      const colour = inside
        ? rng.next() < 0.3
          ? [70, 50, 140]
          : [200, 150, 205]
        : glass.map((v) => Math.min(255, Math.max(0, v + Math.round((rng.next() - 0.5) * 2))));
      rgb.set(colour, i);
    }
  }
  return rgb;
}

function share(mask: { width: number; data: Uint8Array }, test: (x: number, y: number) => boolean): number {
  let hit = 0;
  let all = 0;
  mask.data.forEach((v, i) => {
    const x = i % mask.width;
    const y = (i - x) / mask.width;
    if (!test(x + 0.5, y + 0.5)) return;
    all++;
    hit += v;
  });
  return hit / all;
}

describe('tissue detection on synthetic slides', () => {
  it('finds two tissue discs on glass and nothing else', () => {
    const discs = [
      { x: 60, y: 70, r: 40 },
      { x: 190, y: 120, r: 30 },
    ];
    const mask = tissueFromRgb(slide(256, 200, discs), 256, 200);
    const inDisc = (x: number, y: number, grow: number) =>
      discs.some((d) => (x - d.x) ** 2 + (y - d.y) ** 2 <= (d.r + grow) ** 2);
    expect(share(mask, (x, y) => inDisc(x, y, -2))).toBeGreaterThan(0.99);
    expect(share(mask, (x, y) => !inDisc(x, y, 3))).toBe(0);
    expect(mask.fraction).toBeCloseTo((Math.PI * (40 ** 2 + 30 ** 2)) / (256 * 200), 1);
  });

  it('finds nothing on glass alone, tinted pink or not, nor on a black painted background', () => {
    for (const glass of [
      [236, 232, 238],
      [240, 205, 228], // pink glass: saturated but smooth
      [0, 0, 0],
    ] as [number, number, number][]) {
      const mask = tissueFromRgb(slide(120, 100, [], glass), 120, 100);
      expect(mask.fraction, `glass ${glass.join(',')}`).toBe(0);
    }
  });

  it('leaves out a picture pasted into a corner of a painted-black slide, keeps tissue at the edge of glass', () => {
    const w = 240;
    const h = 200;
    const rgb = slide(w, h, [{ x: 90, y: 120, r: 50 }], [0, 0, 0]);
    // The inset: a 60 x 50 thumbnail of glass with a smaller section in it, in the top-right corner.
    const inset = slide(60, 50, [{ x: 30, y: 25, r: 15 }]);
    for (let y = 0; y < 50; y++) rgb.set(inset.subarray(y * 60 * 3, (y + 1) * 60 * 3), 3 * (y * w + (w - 60)));
    const mask = tissueFromRgb(rgb, w, h);
    expect(share(mask, (x, y) => (x - 90) ** 2 + (y - 120) ** 2 <= 48 ** 2)).toBeGreaterThan(0.99);
    expect(share(mask, (x, y) => x >= w - 60 && y < 50)).toBe(0);
    // On glass (no painted background) a section cut off by the image edge is tissue.
    const glass = tissueFromRgb(slide(w, h, [{ x: w - 20, y: 30, r: 40 }]), w, h);
    expect(share(glass, (x, y) => (x - (w - 20)) ** 2 + (y - 30) ** 2 <= 38 ** 2)).toBeGreaterThan(0.99);
  });

  it('fills a small hole (fat) and drops a speck (dust), keeps a large hole', () => {
    const w = 300;
    const h = 300;
    const rgb = slide(w, h, [{ x: 150, y: 150, r: 120 }]);
    const paint = (cx: number, cy: number, r: number, colour: number[]) => {
      for (let y = cy - r; y <= cy + r; y++)
        for (let x = cx - r; x <= cx + r; x++)
          if ((x - cx) ** 2 + (y - cy) ** 2 <= r * r) rgb.set(colour, 3 * (y * w + x));
    };
    paint(100, 150, 4, [236, 232, 238]); // a fat cell: 50 px, under the 0.5% (450 px) hole limit
    paint(190, 150, 30, [236, 232, 238]); // a lumen of 2800 px: a real hole
    paint(285, 15, 1, [70, 50, 140]); // a dark speck on the glass
    const mask = tissueFromRgb(rgb, w, h);
    const at = (x: number, y: number) => mask.data[y * w + x];
    expect(at(100, 150)).toBe(1);
    expect(at(190, 150)).toBe(0);
    expect(at(285, 15)).toBe(0);
    expect(at(60, 150)).toBe(1);
  });

  it('reads an image file at a reduced size and maps image pixels onto the mask', async () => {
    const rgb = slide(400, 300, [{ x: 100, y: 100, r: 60 }]);
    const png = await sharp(rgb, { raw: { width: 400, height: 300, channels: 3 } })
      .png()
      .toBuffer();
    const pixels = { kind: 'pixels' as const, origin: 'synthetic', width: 400, height: 300, channels: 3 as const };
    const mask = await detectTissue({ ...pixels, data: rgb, scale: 1 }, { maxSide: 200 });
    expect([mask.width, mask.height, mask.imageWidth, mask.imageHeight]).toEqual([200, 150, 400, 300]);
    expect(isTissueAt(mask, 100, 100)).toBe(true);
    expect(isTissueAt(mask, 300, 250)).toBe(false);
    expect(isTissueAt(mask, -5, 100)).toBe(false);
    expect(png.length).toBeGreaterThan(0);
  });

  it('names the image it cannot decode', async () => {
    const broken = { kind: 'pixels' as const, origin: 'broken.h5ad#img', width: 10, height: 10, channels: 3 as const };
    await expect(detectTissue({ ...broken, data: new Uint8Array(5), scale: 1 })).rejects.toThrow(/broken\.h5ad#img/);
  });
});

interface ArraySpot {
  readonly col: number;
  readonly row: number;
  readonly px: number;
  readonly py: number;
}

function readSpots(file: string): ArraySpot[] {
  const [header, ...lines] = readFileSync(file, 'utf8').trim().split(/\r?\n/);
  const names = header.split('\t');
  const at = (name: string) => names.indexOf(name);
  return lines.map((line) => {
    const f = line.split('\t');
    return {
      col: Number(f[at('x')]),
      row: Number(f[at('y')]),
      px: Number(f[at('pixel_x')]),
      py: Number(f[at('pixel_y')]),
    };
  });
}

/** Least-squares affine map (col, row) -> pixel, one coordinate at a time (3 x 3 normal equations). */
function affine(spots: readonly ArraySpot[], pick: (s: ArraySpot) => number): (col: number, row: number) => number {
  const m = [
    [0, 0, 0],
    [0, 0, 0],
    [0, 0, 0],
  ];
  const v = [0, 0, 0];
  for (const s of spots) {
    const a = [s.col, s.row, 1];
    for (let i = 0; i < 3; i++) {
      v[i] += a[i] * pick(s);
      for (let j = 0; j < 3; j++) m[i][j] += a[i] * a[j];
    }
  }
  // Gaussian elimination without pivoting: the matrix is symmetric positive definite.
  for (let i = 0; i < 3; i++) {
    for (let k = i + 1; k < 3; k++) {
      const f = m[k][i] / m[i][i];
      for (let j = i; j < 3; j++) m[k][j] -= f * m[i][j];
      v[k] -= f * v[i];
    }
  }
  const c = [0, 0, 0];
  for (let i = 2; i >= 0; i--) {
    let s = v[i];
    for (let j = i + 1; j < 3; j++) s -= m[i][j] * c[j];
    c[i] = s / m[i][i];
  }
  return (col, row) => c[0] * col + c[1] * row + c[2];
}

describe.each([
  ['A1', 'image.png'],
  ['B4', 'image.jpg'],
])('tissue detection on HER2ST %s', (name, imageFile) => {
  const folder = resolve(HER2ST, name);
  const skip = !existsSync(resolve(folder, imageFile));
  it.skipIf(skip)('covers the spots under tissue and few of the array positions off it', async () => {
    const scale = JSON.parse(readFileSync(resolve(folder, 'scalefactors_json.json'), 'utf8')).tissue_hires_scalef;
    const meta = await sharp(resolve(folder, imageFile)).metadata();
    const image = {
      kind: 'file' as const,
      path: resolve(folder, imageFile),
      width: meta.width!,
      height: meta.height!,
      scale,
    };
    const mask = await detectTissue(image);
    const spots = readSpots(resolve(folder, 'spots.tsv'));
    const inTissue = spots.filter((s) => isTissueAt(mask, s.px * scale, s.py * scale)).length / spots.length;
    const toX = affine(spots, (s) => s.px);
    const toY = affine(spots, (s) => s.py);
    const listed = new Set(spots.map((s) => `${s.col}x${s.row}`));
    const off: [number, number][] = [];
    for (let col = 1; col <= 33; col++) {
      for (let row = 1; row <= 35; row++) {
        const x = toX(col, row) * scale;
        const y = toY(col, row) * scale;
        if (!listed.has(`${col}x${row}`) && x >= 0 && y >= 0 && x < image.width && y < image.height) off.push([x, y]);
      }
    }
    const offTissue = off.filter(([x, y]) => isTissueAt(mask, x, y)).length / off.length;
    console.log(
      `${name}: ${(inTissue * 100).toFixed(1)}% of ${spots.length} spots on tissue, ` +
        `${(offTissue * 100).toFixed(1)}% of ${off.length} off-tissue array positions`,
    );
    if (name === 'A1') {
      // A1's image carries a thumbnail of the annotated section in its top-right corner: not tissue.
      const corner = share(mask, (x, y) => x >= mask.width * 0.78 && y < mask.height * 0.22);
      expect(corner).toBe(0);
    }
    expect(off.length).toBeGreaterThan(200);
    expect(inTissue).toBeGreaterThanOrEqual(0.9);
    expect(offTissue).toBeLessThanOrEqual(0.2);
  });
});
