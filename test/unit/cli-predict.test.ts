// `delst predict` on a bare H&E image, as users run it (the built bin, the bundled base model): HER2ST A2's image
// copied alone into a folder (so it is just an image, without its spots), references from A1 with its pathologist
// labels. A region across the tissue's top edge keeps it fast and shows that the glass (painted black here) gets
// no tiles: every tile must lie near one of A2's real in-tissue spots, which the command never saw.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const A1 = resolve(root, '../shared/data/her2st/A1');
const A2 = resolve(root, '../shared/data/her2st/A2');
const bin = join(root, 'bin/delst.js');
const skip = !existsSync(join(A2, 'image.png')) || !existsSync(A1);
if (skip) console.log('delst predict (bare image) test skipped: needs ../shared/data/her2st/A1 and A2');

/** A2's image: 0.9163 um per full-resolution pixel, image = full resolution * 0.287109. */
const A2_SCALE = 0.287109;
const A2_MPP = 0.9163 / A2_SCALE;
/** Image pixels: the tissue's top edge is near y = 640, black background above it. */
const REGION = { x0: 700, x1: 1000, y0: 500, y1: 800 };

let tmp: string;
let image: string;
beforeAll(async () => {
  if (!existsSync(join(root, 'dist/cli/predict.js'))) throw new Error('dist/ is missing: run `npm run build` first');
  tmp = await mkdtemp(join(tmpdir(), 'delst-cli-predict-'));
  if (skip) return;
  image = join(tmp, 'A2-he.png');
  await copyFile(join(A2, 'image.png'), image);
  const ring = [
    [REGION.x0, REGION.y0],
    [REGION.x1, REGION.y0],
    [REGION.x1, REGION.y1],
    [REGION.x0, REGION.y1],
    [REGION.x0, REGION.y0],
  ];
  const feature = { type: 'Feature', properties: {}, geometry: { type: 'Polygon', coordinates: [ring] } };
  await writeFile(join(tmp, 'region.geojson'), JSON.stringify({ type: 'FeatureCollection', features: [feature] }));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function delst(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 240_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `delst predict base` on the bare image, trained on A1, with more options. */
function predictImage(...options: string[]) {
  return delst('predict', 'base', image, '--train', A1, ...options);
}

/** A2's in-tissue spot centres in image pixels, from its spots.tsv. */
async function a2Spots(): Promise<[number, number][]> {
  const [header, ...lines] = (await readFile(join(A2, 'spots.tsv'), 'utf8')).trim().split(/\r?\n/);
  const names = header.split('\t');
  const [px, py, selected] = ['pixel_x', 'pixel_y', 'selected'].map((n) => names.indexOf(n));
  return lines
    .map((l) => l.split('\t'))
    .filter((f) => f[selected] === '1')
    .map((f) => [Number(f[px]) * A2_SCALE, Number(f[py]) * A2_SCALE]);
}

describe.skipIf(skip)('delst predict on a bare H&E image', () => {
  it('tiles the tissue in the region, skips the background, and predicts class and genes per tile', async () => {
    const out = join(tmp, 'tiles.csv');
    const run = predictImage(
      '--label-column',
      'pathologist',
      '--genes',
      'ERBB2',
      '--top-genes',
      '2',
      '--microns-per-pixel',
      A2_MPP.toFixed(4),
      '--region',
      join(tmp, 'region.geojson'),
      '--out',
      out,
      '--json',
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const summary = JSON.parse(run.stdout);
    expect(summary.tiled).toEqual({ diameterMicrons: 100, spacingMicrons: 100 });

    const [header, ...rows] = (await readFile(out, 'utf8')).trim().split('\n');
    const columns = header.split(',');
    expect(columns.slice(0, 5)).toEqual(['tile_id', 'x', 'y', 'predicted_class', 'probability']);
    expect(columns).toContain('ERBB2');
    expect(columns).toHaveLength(5 + summary.genes.length);
    expect(rows).toHaveLength(summary.spots);
    // Without tissue detection the region holds ~105 tiles (its area over a 100 um hexagon's); half of it is glass.
    const spacing = 100 / A2_MPP;
    const all = ((REGION.x1 - REGION.x0) * (REGION.y1 - REGION.y0)) / ((Math.sqrt(3) / 2) * spacing * spacing);
    expect(rows.length).toBeGreaterThan(0.25 * all);
    expect(rows.length).toBeLessThan(0.8 * all);

    const spots = await a2Spots();
    const classes = [
      'invasive cancer',
      'cancer in situ',
      'immune infiltrate',
      'breast glands',
      'connective tissue',
      'adipose tissue',
    ];
    const ids = new Set<string>();
    for (const row of rows) {
      const f = row.split(',');
      expect(f[0]).toMatch(/^tile_\d+_\d+$/);
      ids.add(f[0]);
      const [x, y] = [Number(f[1]), Number(f[2])];
      expect(x).toBeGreaterThanOrEqual(REGION.x0);
      expect(x).toBeLessThanOrEqual(REGION.x1);
      expect(y).toBeGreaterThanOrEqual(REGION.y0);
      expect(y).toBeLessThanOrEqual(REGION.y1);
      // On tissue: within one ST spacing (200 um) of a spot the array found under tissue.
      const nearest = Math.min(...spots.map(([sx, sy]) => Math.hypot(sx - x, sy - y)));
      expect(nearest * A2_MPP).toBeLessThan(200);
      expect(classes).toContain(f[3]);
      expect(Number(f[4])).toBeGreaterThan(0);
      expect(Number(f[4])).toBeLessThanOrEqual(1);
      for (const v of f.slice(5)) expect(Number(v)).toBeGreaterThanOrEqual(0);
    }
    expect(ids.size).toBe(rows.length);
  }, 300_000);

  it('asks for the pixel size of an image that does not say it, naming the file', () => {
    const run = predictImage('--out', join(tmp, 'x.csv'));
    expect(run.code).not.toBe(0);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/A2-he\.png.*--microns-per-pixel/);
    expect(existsSync(join(tmp, 'x.csv'))).toBe(false);
  });

  it('names a region file that is not GeoJSON polygons, and refuses tiling options for a section with spots', async () => {
    const bad = join(tmp, 'bad.geojson');
    await writeFile(bad, JSON.stringify({ type: 'Point', coordinates: [1, 2] }));
    const run = predictImage('--out', join(tmp, 'x.csv'), '--microns-per-pixel', '3', '--region', bad);
    expect(run.code).not.toBe(0);
    expect(run.stderr.trim()).toBe(`delst predict: ${bad}: no Polygon or MultiPolygon in it`);
    const spotted = delst('predict', 'base', A2, '--train', A1, '--out', join(tmp, 'x.csv'), '--spacing', '50');
    expect(spotted.code).not.toBe(0);
    expect(spotted.stderr).toMatch(/has spots of its own/);
  });
});
