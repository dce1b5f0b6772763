// `npm run bench -- viewer [--spots 100000] [--slide DIR] [--configs canvas+canvas,canvas+webgl] [--cycles 3]`
//
// The viewer in headless Chromium (Debian's, software GL) against the browser-mode server, on a synthetic section
// of 100,000 spots laid over the HER2ST B4 slide (9272 x 9923): a jittered hexagonal lattice covering the image,
// 10 um spots, Poisson counts for a few genes whose rates vary over the slide, and a label column of 5 regions.
// For each OpenSeadragon drawer + spot overlay pair it measures:
// - open: page time (from navigation) to the first tile, to all tiles of the view, and to the first frame of spots;
// - pan and zoom: rAF frame intervals during a scripted mouse drag and wheel zoom (median, p90), and the overlay's
//   own CPU time per frame;
// - colour switches gene -> other gene -> label column on all spots: the recolour itself (colours + upload + draw
//   call, data-colour-ms), with the gene fetch (data-colour-total-ms), and until the frame with the new colours
//   (data-colour-frame-ms).

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { chromium, type Page } from 'playwright-core';
import sharp from 'sharp';
import { Studio } from '../core/api/studio.js';
import { packageRoot } from '../core/resources.js';
import type { Section } from '../core/section/section.js';
import { SparseCounts } from '../core/section/sparse-counts.js';
import { startBrowserServer } from '../server/browser-server.js';
import { CHROMIUM, CHROMIUM_ARGS } from './chromium.js';
import { Rng } from '../core/engine/random.js';

/** Seeded uniform [0, 1) from the engine's generator. */
function mulberry32(seed: number): () => number {
  const generator = new Rng(seed);
  return () => generator.next();
}

// The project's data folder sits beside the checkout (../shared/data).
const DEFAULT_SLIDE = path.join(packageRoot(), '..', 'shared', 'data', 'her2st', 'B4');
const VIEWPORT = { width: 1400, height: 860 };
const GENES = ['ERBB2', 'GRB7', 'KRT19', 'CD74', 'MGP', 'ACTB'];
const REGIONS = ['tumour', 'stroma', 'immune', 'adipose', 'normal gland'];
const SPOT_DIAMETER_UM = 10;

type Drawer = 'canvas' | 'webgl';
interface Config {
  readonly drawer: Drawer;
  /** 'none': the canvas overlay with spots turned off, the baseline of tiles alone. */
  readonly overlay: Drawer | 'none';
}

export async function benchViewer(args: string[]): Promise<object> {
  const { values } = parseArgs({
    args,
    options: {
      spots: { type: 'string' },
      slide: { type: 'string' },
      configs: { type: 'string' },
      cycles: { type: 'string' },
    },
  });
  const nSpots = Math.max(1, Number(values.spots ?? 100_000));
  const cycles = Math.max(1, Number(values.cycles ?? 3));
  const configs = parseConfigs(values.configs ?? 'canvas+canvas,canvas+webgl');

  const built = performance.now();
  const section = await syntheticSection(values.slide ?? DEFAULT_SLIDE, nSpots);
  const buildSectionMs = performance.now() - built;

  const cacheDir = path.join(packageRoot(), '.delst-cache', 'bench');
  await fs.mkdir(cacheDir, { recursive: true });
  const studio = new Studio({ cacheDir });
  const { id } = studio.addSection(section);
  const pyramidStart = performance.now();
  await studio.getSlide(id);
  const pyramidMs = performance.now() - pyramidStart;

  const payload = await measurePayload(studio, id);

  const rendererDir = path.join(packageRoot(), 'dist', 'renderer');
  const server = await startBrowserServer({ studio, rendererDir, onError: () => undefined });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  const chromiumVersion = browser.version();
  const results: object[] = [];
  let gl: string | null = null;
  try {
    for (const config of configs) {
      const context = await browser.newContext({ viewport: VIEWPORT });
      const page = await context.newPage();
      try {
        gl ??= await page.evaluate(webglRenderer);
        const overlay = config.overlay === 'none' ? 'canvas' : config.overlay;
        const url = `${server.url}&drawer=${config.drawer}&overlay=${overlay}`;
        results.push({ ...config, ...(await benchConfig(page, url, cycles, config.overlay !== 'none')) });
      } finally {
        await context.close();
      }
    }
  } finally {
    await browser.close();
    await server.close();
  }

  return {
    spots: nSpots,
    slide: section.image?.kind === 'file' ? section.image.path : null,
    image: { width: section.image?.width, height: section.image?.height },
    spotDiameterMicrons: SPOT_DIAMETER_UM,
    genes: GENES,
    chromium: chromiumVersion,
    webgl: gl,
    cores: os.availableParallelism(),
    viewport: VIEWPORT,
    buildSectionMs: round(buildSectionMs),
    pyramidMs: round(pyramidMs),
    payload,
    configs: results,
  };
}

function parseConfigs(text: string): Config[] {
  return text.split(',').map((pair) => {
    const [drawer, overlay] = pair.split('+');
    const ok = (v: string | undefined): v is Drawer => v === 'canvas' || v === 'webgl';
    if (!ok(drawer) || !(ok(overlay) || overlay === 'none')) {
      throw new Error(
        `--configs: expected drawer+overlay (drawer canvas|webgl, overlay canvas|webgl|none), got ${pair}`,
      );
    }
    return { drawer, overlay };
  });
}

async function benchConfig(page: Page, url: string, cycles: number, spotsOn: boolean): Promise<object> {
  await page.goto(url);
  const stage = page.locator('[data-testid=slide]');
  await page.waitForFunction(
    () => {
      const el = (globalThis as unknown as PageGlobals).document.querySelector('[data-testid=slide]');
      return el?.dataset.tilesLoaded === 'true' && Number(el.dataset.spotsDrawn) > 0;
    },
    null,
    { timeout: 180_000 },
  );
  const attr = async (name: string) => Number(await stage.getAttribute(name));
  const open = {
    firstTileMs: await attr('data-first-tile-ms'),
    tilesLoadedMs: await attr('data-tiles-loaded-ms'),
    firstSpotsMs: await attr('data-first-spots-ms'),
    spotsDrawn: await attr('data-spots-drawn'),
  };
  const renderer = spotsOn ? await stage.getAttribute('data-overlay-renderer') : 'none';
  if (!spotsOn) await page.locator('[data-testid=spots-on]').uncheck();
  const box = (await stage.boundingBox())!;
  const cx = box.x + box.width / 2;
  const cy = box.y + box.height / 2;
  await page.mouse.move(box.x + 4, box.y + 4);
  await settle(page);

  // Pan: a drag across the slide and back, one mouse step per ~frame.
  await startFrames(page);
  await page.mouse.move(cx, cy);
  await page.mouse.down();
  for (let i = 1; i <= 40; i++) {
    await page.mouse.move(cx + i * 8, cy + i * 4);
    await page.waitForTimeout(16);
  }
  for (let i = 39; i >= 0; i--) {
    await page.mouse.move(cx + i * 8, cy + i * 4);
    await page.waitForTimeout(16);
  }
  await page.mouse.up();
  await page.waitForTimeout(600);
  const pan = summariseFrames(await stopFrames(page));
  await page.mouse.move(box.x + 4, box.y + 4);
  await settle(page);

  // Zoom: wheel in towards the middle, then back out.
  await startFrames(page);
  await page.mouse.move(cx, cy);
  for (const direction of [-1, 1]) {
    for (let i = 0; i < 6; i++) {
      await page.mouse.wheel(0, direction * 240);
      await page.waitForTimeout(120);
    }
  }
  await page.waitForTimeout(800);
  const zoom = summariseFrames(await stopFrames(page));
  await page.mouse.move(box.x + 4, box.y + 4);
  await page.locator('button[aria-label="Fit to window"]').click();
  await settle(page);

  // Colour switches on every spot.
  const switches: Record<string, { colourMs: number; totalMs: number; frameMs: number }[]> = {
    'outline->gene': [],
    'gene->gene': [],
    'gene->label': [],
  };
  for (let cycle = 0; cycle < cycles; cycle++) {
    switches[cycle === 0 ? 'outline->gene' : 'gene->gene'].push(await pickGene(page, GENES[0]));
    if (cycle === 0) {
      await page.screenshot({ path: path.join(packageRoot(), 'test-results', `bench-viewer-${renderer}-erbb2.png`) });
    }
    switches['gene->gene'].push(await pickGene(page, GENES[1]));
    switches['gene->label'].push(
      await recolour(page, () => page.locator('[data-testid=label-select]').selectOption('region')),
    );
  }
  const colour = Object.fromEntries(
    Object.entries(switches).map(([name, runs]) => [
      name,
      {
        runs: runs.length,
        medianColourMs: round(median(runs.map((r) => r.colourMs))),
        medianTotalMs: round(median(runs.map((r) => r.totalMs))),
        medianFrameMs: round(median(runs.map((r) => r.frameMs))),
      },
    ]),
  );
  await page.screenshot({ path: path.join(packageRoot(), 'test-results', `bench-viewer-${renderer}.png`) });
  return { url: url.replace(/token=[^&]+/, 'token=…'), renderer, open, pan, zoom, colour };
}

/** Lets OpenSeadragon's springs and pending tiles come to rest. */
async function settle(page: Page): Promise<void> {
  await page.waitForTimeout(700);
}

async function pickGene(page: Page, gene: string) {
  return recolour(page, async () => {
    await page.locator('[data-testid=gene-search]').fill(gene);
    await page.locator(`[data-testid=gene-option][data-gene="${gene}"]`).click();
  });
}

/** Clears the colour timings, runs a switch, waits for all three to come back. */
async function recolour(page: Page, act: () => Promise<unknown>) {
  await page.evaluate(() => {
    const el = (globalThis as unknown as PageGlobals).document.querySelector('[data-testid=slide]')!;
    delete el.dataset.colourMs;
    delete el.dataset.colourTotalMs;
    delete el.dataset.colourFrameMs;
  });
  await act();
  await page.waitForFunction(() => {
    const d = (globalThis as unknown as PageGlobals).document.querySelector('[data-testid=slide]')!.dataset;
    return d.colourMs !== undefined && d.colourTotalMs !== undefined && d.colourFrameMs !== undefined;
  });
  const d = await page.evaluate(() => ({
    ...(globalThis as unknown as PageGlobals).document.querySelector('[data-testid=slide]')!.dataset,
  }));
  return { colourMs: Number(d.colourMs), totalMs: Number(d.colourTotalMs), frameMs: Number(d.colourFrameMs) };
}

/**
 * The browser globals page-side code uses. Node's typings have no DOM: callbacks given to page.evaluate cast
 * globalThis to this inside themselves (they are sent as source, so they cannot close over anything).
 */
interface PageGlobals {
  document: {
    querySelector(selector: string): { dataset: Record<string, string | undefined> } | null;
    createElement(tag: 'canvas'): { getContext(kind: 'webgl2'): WebGl2Like | null };
  };
  requestAnimationFrame(callback: (now: number) => void): number;
  performance: { now(): number };
  __benchFrames?: Frame[];
  __benchStop?: boolean;
}

interface WebGl2Like {
  readonly RENDERER: number;
  getExtension(name: 'WEBGL_debug_renderer_info'): { readonly UNMASKED_RENDERER_WEBGL: number } | null;
  getParameter(name: number): unknown;
}

interface Frame {
  /** rAF interval, ms. */
  readonly dt: number;
  /** Whether the view changed in this frame. */
  readonly moved: boolean;
  /** The overlay's CPU time for its last draw. */
  readonly draw: number;
}

async function startFrames(page: Page): Promise<void> {
  await page.evaluate(() => {
    const window = globalThis as unknown as PageGlobals;
    const stage = window.document.querySelector('[data-testid=slide]')!;
    const frames: Frame[] = [];
    window.__benchFrames = frames;
    window.__benchStop = false;
    let last = window.performance.now();
    let view = stage.dataset.view;
    const tick = (now: number) => {
      const moved = stage.dataset.view !== view;
      view = stage.dataset.view;
      frames.push({ dt: now - last, moved, draw: Number(stage.dataset.drawMs) });
      last = now;
      if (!window.__benchStop) window.requestAnimationFrame(tick);
    };
    window.requestAnimationFrame(tick);
  });
}

async function stopFrames(page: Page): Promise<Frame[]> {
  return page.evaluate(() => {
    const window = globalThis as unknown as PageGlobals;
    window.__benchStop = true;
    return window.__benchFrames ?? [];
  });
}

/** Frame statistics over the frames in which the view moved (the idle tail is left out). */
function summariseFrames(frames: Frame[]): object {
  const moving = frames.slice(1).filter((f) => f.moved);
  const dts = moving.map((f) => f.dt);
  const draws = moving.map((f) => f.draw);
  const medianFrameMs = median(dts);
  return {
    frames: moving.length,
    medianFrameMs: round(medianFrameMs),
    p90FrameMs: round(quantile(dts, 0.9)),
    fps: round(1000 / medianFrameMs, 1),
    medianOverlayDrawMs: round(median(draws)),
    p90OverlayDrawMs: round(quantile(draws, 0.9)),
  };
}

/** What crosses HTTP for 100k spots: positions and labels, one gene (as sent, base64, and as JSON numbers). */
async function measurePayload(studio: Studio, id: string): Promise<object> {
  const timed = async <T>(work: () => Promise<T>): Promise<[T, number]> => {
    const start = performance.now();
    const value = await work();
    return [value, performance.now() - start];
  };
  const [spots, spotsMs] = await timed(() => studio.getSpots(id));
  await studio.getGeneValues(id, GENES[5]); // builds the gene-major index once
  const [gene, geneMs] = await timed(() => studio.getGeneValues(id, GENES[0]));
  const decode = (text: string) => Array.from(new Float32Array(new Uint8Array(Buffer.from(text, 'base64')).buffer));
  const asNumbers = { ...gene, raw: decode(gene.raw), normalised: decode(gene.normalised) };
  const [details, detailsMs] = await timed(() => studio.getSpotDetails(id, 12_345 % spots.ids.length));
  const kb = (value: unknown) => round(Buffer.byteLength(JSON.stringify(value)) / 1024, 1);
  return {
    getSpotsKB: kb(spots),
    getSpotsMs: round(spotsMs),
    getGeneValuesKB: kb(gene),
    getGeneValuesMs: round(geneMs),
    geneValuesAsJsonNumbersKB: kb(asNumbers),
    rawAsJsonNumbersKB: kb(asNumbers.raw),
    normalisedAsJsonNumbersKB: kb(asNumbers.normalised),
    getSpotDetailsKB: kb(details),
    getSpotDetailsMs: round(detailsMs, 3),
  };
}

function webglRenderer(): string | null {
  const gl = (globalThis as unknown as PageGlobals).document.createElement('canvas').getContext('webgl2');
  if (!gl) return null;
  const info = gl.getExtension('WEBGL_debug_renderer_info');
  return String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
}

/**
 * A section over the slide at `dir` (a her2st folder): a hexagonal lattice with spacing chosen to give `n` spots
 * over the whole image, jittered by a tenth of the spacing; seeded, so every run draws the same section.
 */
export async function syntheticSection(dir: string, n: number): Promise<Section> {
  const names = await fs.readdir(dir);
  const imageName = names.find((name) => /^image\.(jpe?g|png|tiff?)$/i.test(name));
  if (!imageName) throw new Error(`${dir}: no image.jpg or image.png`);
  const file = path.join(dir, imageName);
  const { width, height } = await sharp(file).metadata();
  const factors = JSON.parse(await fs.readFile(path.join(dir, 'scalefactors_json.json'), 'utf8')) as {
    microns_per_pixel_fullres: number;
    tissue_hires_scalef: number;
  };
  const random = mulberry32(20_260_801);
  const scale = factors.tissue_hires_scalef;
  // Spots in full-resolution pixels, the image being `scale` of that.
  const fullWidth = width / scale;
  const fullHeight = height / scale;
  const spacing = Math.sqrt((2 * fullWidth * fullHeight) / (Math.sqrt(3) * n));
  const rowStep = (spacing * Math.sqrt(3)) / 2;
  const points: [number, number][] = [];
  for (let row = 0; row * rowStep < fullHeight; row++) {
    for (let col = 0; col * spacing < fullWidth; col++) {
      const x = (col + (row % 2) / 2) * spacing + (random() - 0.5) * 0.2 * spacing;
      const y = row * rowStep + (random() - 0.5) * 0.2 * spacing;
      if (x >= 0 && y >= 0 && x < fullWidth && y < fullHeight) points.push([x, y]);
    }
  }
  // Exactly n: drop a random few (or repeat a few, jittered, when the lattice came out short).
  while (points.length > n) points.splice(Math.floor(random() * points.length), 1);
  while (points.length < n) {
    const [x, y] = points[Math.floor(random() * points.length)];
    points.push([x + (random() - 0.5) * spacing, y + (random() - 0.5) * spacing]);
  }

  const x = Float64Array.from(points, (p) => p[0]);
  const y = Float64Array.from(points, (p) => p[1]);
  const [cx, cy] = [fullWidth / 2, fullHeight / 2];
  const radius = Math.min(fullWidth, fullHeight) / 2;
  // Expression fields: each gene peaks somewhere else on the slide.
  const rates = (i: number): number[] => {
    const u = (x[i] - cx) / radius;
    const v = (y[i] - cy) / radius;
    const r2 = u * u + v * v;
    return [
      0.5 + 30 * Math.exp(-r2 / 0.3), // ERBB2: a central tumour
      0.3 + 12 * Math.exp(-r2 / 0.25), // GRB7: co-amplified with ERBB2
      2 + 10 * (0.5 + 0.5 * Math.sin(3 * u) * Math.cos(2 * v)), // KRT19: epithelium in patches
      1 + 8 * Math.exp(-((u - 0.6) ** 2 + (v + 0.5) ** 2) / 0.1), // CD74: an immune aggregate
      1 + 6 * Math.max(0, r2 - 0.5), // MGP: stroma at the rim
      20, // ACTB: everywhere
    ];
  };
  const indptr = new Float64Array(n + 1);
  const geneIndex: number[] = [];
  const data: number[] = [];
  for (let i = 0; i < n; i++) {
    rates(i).forEach((rate, g) => {
      const count = poisson(rate, random);
      if (count > 0) {
        geneIndex.push(g);
        data.push(count);
      }
    });
    indptr[i + 1] = geneIndex.length;
  }
  const region = Array.from({ length: n }, (_, i) => {
    const u = (x[i] - cx) / radius;
    const v = (y[i] - cy) / radius;
    const r2 = u * u + v * v;
    if (r2 < 0.3) return REGIONS[0];
    if ((u - 0.6) ** 2 + (v + 0.5) ** 2 < 0.1) return REGIONS[2];
    if (r2 > 1.2) return REGIONS[3];
    return Math.sin(3 * u) * Math.cos(2 * v) > 0.3 ? REGIONS[4] : REGIONS[1];
  });

  return {
    name: `synthetic-${n}`,
    format: 'anndata',
    source: `synthetic ${n} spots over ${dir}`,
    spots: {
      ids: Array.from({ length: n }, (_, i) => `spot-${i}`),
      x,
      y,
      inTissue: new Uint8Array(n).fill(1),
      arrayRow: new Float64Array(n).fill(NaN),
      arrayCol: new Float64Array(n).fill(NaN),
    },
    genes: { symbols: GENES, ids: GENES.map(() => null) },
    counts: SparseCounts.fromCsr(n, GENES.length, indptr, geneIndex, data),
    image: { kind: 'file', path: file, width, height, scale },
    micronsPerPixel: factors.microns_per_pixel_fullres,
    spotDiameterMicrons: SPOT_DIAMETER_UM,
    spotSpacingMicrons: spacing * factors.microns_per_pixel_fullres,
    labels: new Map([['region', region]]),
    warnings: [],
  };
}

/** Poisson draw: Knuth's product method for small rates, a rounded normal beyond. */
function poisson(rate: number, random: () => number): number {
  if (rate > 30) {
    const z = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
    return Math.max(0, Math.round(rate + Math.sqrt(rate) * z));
  }
  const limit = Math.exp(-rate);
  let k = 0;
  let p = random();
  while (p > limit) {
    k++;
    p *= random();
  }
  return k;
}

function median(values: number[]): number {
  return quantile(values, 0.5);
}

function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
}

function round(value: number, digits = 2): number {
  return Number(value.toFixed(digits));
}
