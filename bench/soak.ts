// `npm run bench -- soak [--pans 1000] [--cancels 20] [--pans-per-open 50] [--sample-every 10] [--slide DIR]
//   [--seed 1] [--gc]`
//
// Memory over a long session on HER2ST B4, through the browser-mode server over HTTP on 127.0.0.1 (the app's own
// API and tile route), to see that it levels off:
// - pan: openPath, getSpots, getSlide, then --pans-per-open pans, then closeSection, over and over. A pan fetches
//   every tile a 1600 x 1000 viewport needs at a random position of a random one of the 6 most detailed levels
//   (6 requests at a time, as a browser does per host), and one pan in ten also fetches a random gene's values.
// - train: startTraining (Quick preset, in the training worker as the app runs it), cancelTraining at a random
//   moment (while it starts, cuts patches, caches features or trains), wait until it has stopped, deleteModel.
// The Studio, its training worker (a thread) and the HTTP client share this process: the RSS below is all of them.
// It is sampled every 50 ms for the peaks and after each recorded iteration for the curve (after a run, once its
// worker has exited); the verdict fits a line to the last half of the curve. --gc collects garbage before each
// recorded sample, so that the curve shows what is retained rather than when V8 happens to collect. Progress goes
// to stderr.

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { GeneSummary, OpenPathResult, SectionSpots, SlideInfo, TrainingStatus } from '../core/api/api.js';
import { Studio } from '../core/api/studio.js';
import { Rng } from '../core/engine/random.js';
import { packageRoot } from '../core/resources.js';
import { startBrowserServer, TOKEN_HEADER } from '../server/browser-server.js';

// The project's data folder sits beside the checkout (../shared/data).
const DEFAULT_SLIDE = path.join(packageRoot(), '..', 'shared', 'data', 'her2st', 'B4');
const VIEWPORT = { width: 1600, height: 1000 };
const PAN_LEVELS = 6;
const PARALLEL_TILES = 6;
const GENE_EVERY = 10;
const GENE_CHOICES = 200;
/** Longest wait before a cancel: a Quick run on B4 is past its feature caching and into the epochs by then. */
const MAX_CANCEL_AFTER_S = 14;
/** The curve levels off when the line through its last half rises less than this share of the final RSS. */
const LEVEL_TOLERANCE = 0.05;
const MB = 2 ** 20;

export async function benchSoak(args: string[]): Promise<object> {
  const { values } = parseArgs({
    args,
    options: {
      pans: { type: 'string' },
      cancels: { type: 'string' },
      'pans-per-open': { type: 'string' },
      'sample-every': { type: 'string' },
      slide: { type: 'string' },
      seed: { type: 'string' },
      gc: { type: 'boolean' },
    },
  });
  const pans = count(values.pans, 1000, '--pans');
  const cancels = count(values.cancels, 20, '--cancels');
  const pansPerOpen = Math.max(1, count(values['pans-per-open'], 50, '--pans-per-open'));
  const sampleEvery = Math.max(1, count(values['sample-every'], 10, '--sample-every'));
  const slideDir = path.resolve(values.slide ?? DEFAULT_SLIDE);
  const rng = new Rng(count(values.seed, 1, '--seed'));
  if (values.gc) collect = exposeGc();

  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'delst-bench-soak-'));
  const studio = new Studio({ cacheDir: path.join(scratch, 'cache'), projectDir: path.join(scratch, 'project') });
  // Only /api and /tiles are requested: an empty folder stands in for the renderer.
  const rendererDir = path.join(scratch, 'renderer');
  await fs.mkdir(rendererDir);
  const server = await startBrowserServer({ studio, rendererDir });
  const client = new Client(`http://127.0.0.1:${server.port}`, server.token);
  const startRssMB = rssMB();
  try {
    const pan = await panPhase(client, slideDir, { pans, pansPerOpen, sampleEvery, rng });
    const train = await trainPhase(client, studio, slideDir, { cancels, rng });
    return {
      slide: slideDir,
      cores: os.availableParallelism(),
      viewport: VIEWPORT,
      startRssMB,
      gcBeforeSamples: values.gc === true,
      criterion: `levels off: the least-squares line through the last half of the samples rises less than ${LEVEL_TOLERANCE * 100}% of the final RSS over that half`,
      workerRss: 'the training worker is a thread of this process: included in rss',
      pan,
      train,
      maxRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
    };
  } finally {
    await studio.shutdown(5_000);
    await server.close();
    await fs.rm(scratch, { recursive: true, force: true });
  }
}

function count(text: string | undefined, fallback: number, option: string): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${option} must be a whole number >= 0, not ${text}`);
  return value;
}

// ---- the client ---------------------------------------------------------------------------------------------------

/** The renderer's side of browser mode: API calls with the token header, tiles as plain GETs. */
class Client {
  constructor(
    private readonly base: string,
    private readonly token: string,
  ) {}

  async api<T>(method: string, ...args: unknown[]): Promise<T> {
    const response = await fetch(`${this.base}/api/${method}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', [TOKEN_HEADER]: this.token },
      body: JSON.stringify(args),
    });
    const body = (await response.json()) as T | { error: string };
    if (!response.ok) throw new Error(`${method}: ${(body as { error: string }).error}`);
    return body as T;
  }

  /** Fetches one tile; returns its size in bytes. */
  async tile(key: string, level: number, col: number, row: number): Promise<number> {
    const response = await fetch(`${this.base}/tiles/${key}/${level}/${col}_${row}.jpeg`, {
      headers: { [TOKEN_HEADER]: this.token },
    });
    const bytes = (await response.arrayBuffer()).byteLength;
    if (!response.ok) throw new Error(`tile ${level}/${col}_${row}: HTTP ${response.status}`);
    return bytes;
  }
}

// ---- memory -------------------------------------------------------------------------------------------------------

function rssMB(): number {
  return process.memoryUsage().rss / MB;
}

/** Full garbage collection before each recorded sample (--gc); none by default. */
let collect: () => void = () => undefined;

/** V8's gc() without starting node with --expose-gc. */
function exposeGc(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/** Peak RSS every 50 ms, and the curve: one sample per recorded iteration. */
class RssRecorder {
  private peak = rssMB();
  private readonly timer = setInterval(() => (this.peak = Math.max(this.peak, rssMB())), 50);
  readonly samples: [iteration: number, mb: number][] = [];
  private readonly heap: number[] = [];

  record(iteration: number): void {
    collect();
    const now = rssMB();
    this.peak = Math.max(this.peak, now);
    this.samples.push([iteration, now]);
    this.heap.push(process.memoryUsage().heapUsed / MB);
  }

  summary(iterations: number): object {
    clearInterval(this.timer);
    const final = rssMB();
    const at = (share: number) => round(nearest(this.samples, share * iterations));
    const slope = lastHalfSlope(this.samples);
    const growthMB = slope * (iterations / 2);
    return {
      peakRssMB: round(Math.max(this.peak, final)),
      finalRssMB: round(final),
      rssAt10PercentMB: at(0.1),
      rssAt50PercentMB: at(0.5),
      rssAt90PercentMB: at(0.9),
      lastHalfSlopeMBPer100: round(slope * 100, 2),
      lastHalfGrowthMB: round(growthMB, 1),
      levelsOff: this.samples.length < 4 ? null : growthMB < LEVEL_TOLERANCE * final,
      // The curve, one sample per recorded iteration (see sampledAt).
      curveMB: this.samples.map(([, mb]) => round(mb)).join(' '),
      sampledAt: this.samples.map(([i]) => i).join(' '),
      heapUsedCurveMB: this.heap.map((mb) => round(mb)).join(' '),
    };
  }
}

/** RSS of the sample nearest to `iteration`. */
function nearest(samples: [number, number][], iteration: number): number {
  let best = samples[0] ?? [0, rssMB()];
  for (const sample of samples) if (Math.abs(sample[0] - iteration) < Math.abs(best[0] - iteration)) best = sample;
  return best[1];
}

/** Least-squares slope (MB per iteration) of the samples in the second half of the run. */
function lastHalfSlope(samples: [number, number][]): number {
  const half = samples.slice(Math.floor(samples.length / 2));
  if (half.length < 2) return 0;
  const mx = half.reduce((s, [x]) => s + x, 0) / half.length;
  const my = half.reduce((s, [, y]) => s + y, 0) / half.length;
  const sxy = half.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0);
  const sxx = half.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  return sxx === 0 ? 0 : sxy / sxx;
}

function round(value: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length === 0 ? 0 : sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

// ---- pan ----------------------------------------------------------------------------------------------------------

interface Opened {
  readonly id: string;
  readonly slide: SlideInfo;
  readonly genes: string[];
}

/** What the viewer does on opening a section: the section, its spots, its slide, the gene list. */
async function openSlide(client: Client, dir: string): Promise<Opened> {
  const { opened, failed } = await client.api<OpenPathResult>('openPath', dir);
  if (opened.length !== 1) throw new Error(`${dir}: expected one section, got ${opened.length} (${failed.join('; ')})`);
  const id = opened[0].id;
  await client.api<SectionSpots>('getSpots', id);
  const slide = await client.api<SlideInfo | null>('getSlide', id);
  if (!slide) throw new Error(`${dir}: the section has no image`);
  const genes = await client.api<GeneSummary[]>('searchGenes', id, '', GENE_CHOICES);
  return { id, slide, genes: genes.map((g) => g.symbol) };
}

interface Level {
  readonly level: number;
  readonly width: number;
  readonly height: number;
}

/** The `count` most detailed DeepZoom levels of a slide. */
function detailedLevels(slide: SlideInfo, count: number): Level[] {
  const top = Math.ceil(Math.log2(Math.max(slide.width, slide.height)));
  return Array.from({ length: Math.min(count, top + 1) }, (_, i) => {
    const level = top - i;
    return {
      level,
      width: Math.ceil(slide.width / 2 ** i),
      height: Math.ceil(slide.height / 2 ** i),
    };
  });
}

/** Tiles (col, row) a viewport at (x, y) of a level covers. */
function viewportTiles(level: Level, x: number, y: number, tileSize: number): [number, number][] {
  const span = (start: number, length: number, size: number) => {
    const first = Math.floor(start / tileSize);
    const last = Math.floor((Math.min(start + length, size) - 1) / tileSize);
    return Array.from({ length: last - first + 1 }, (_, i) => first + i);
  };
  const cols = span(x, VIEWPORT.width, level.width);
  const rows = span(y, VIEWPORT.height, level.height);
  return cols.flatMap((col) => rows.map((row): [number, number] => [col, row]));
}

async function fetchTiles(client: Client, slide: SlideInfo, level: number, tiles: [number, number][]) {
  let bytes = 0;
  for (let i = 0; i < tiles.length; i += PARALLEL_TILES) {
    const batch = tiles.slice(i, i + PARALLEL_TILES);
    const sizes = await Promise.all(batch.map(([col, row]) => client.tile(slide.key, level, col, row)));
    bytes += sizes.reduce((a, b) => a + b, 0);
  }
  return bytes;
}

async function panPhase(
  client: Client,
  dir: string,
  options: { pans: number; pansPerOpen: number; sampleEvery: number; rng: Rng },
): Promise<object> {
  const { pans, pansPerOpen, sampleEvery, rng } = options;
  const memory = new RssRecorder();
  const started = performance.now();
  const panMs: number[] = [];
  let tiles = 0;
  let bytes = 0;
  let geneFetches = 0;
  let opens = 0;
  let open: Opened | null = null;
  for (let i = 1; i <= pans; i++) {
    if (!open) {
      open = await openSlide(client, dir);
      opens++;
    }
    const levels = detailedLevels(open.slide, PAN_LEVELS);
    const level = levels[Math.floor(rng.uniform(0, levels.length))];
    const x = Math.floor(rng.uniform(0, Math.max(1, level.width - VIEWPORT.width)));
    const y = Math.floor(rng.uniform(0, Math.max(1, level.height - VIEWPORT.height)));
    const wanted = viewportTiles(level, x, y, open.slide.tileSize);
    const panStart = performance.now();
    bytes += await fetchTiles(client, open.slide, level.level, wanted);
    panMs.push(performance.now() - panStart);
    tiles += wanted.length;
    if (rng.uniform(0, GENE_EVERY) < 1) {
      const gene = open.genes[Math.floor(rng.uniform(0, open.genes.length))];
      await client.api('getGeneValues', open.id, gene);
      geneFetches++;
    }
    if (i % pansPerOpen === 0 || i === pans) {
      await client.api('closeSection', open.id);
      open = null;
    }
    if (i % sampleEvery === 0 || i === pans) memory.record(i);
    if (i % 100 === 0 || i === pans) {
      console.error(`soak: pan ${i}/${pans}, rss ${Math.round(rssMB())} MB`);
    }
  }
  return {
    iterations: pans,
    opens,
    tiles,
    tileMB: round(bytes / MB, 1),
    geneFetches,
    medianPanMs: round(median(panMs), 1),
    seconds: round((performance.now() - started) / 1000, 1),
    ...memory.summary(pans),
  };
}

// ---- train and cancel ---------------------------------------------------------------------------------------------

async function waitUntilStopped(client: Client): Promise<TrainingStatus> {
  for (;;) {
    const status = await client.api<TrainingStatus>('getTrainingStatus');
    if (status.state !== 'running') return status;
    await new Promise((done) => setTimeout(done, 100));
  }
}

/** Waits `seconds`, or less if the run ends first; returns the status then. */
async function runFor(client: Client, seconds: number): Promise<TrainingStatus> {
  const end = performance.now() + seconds * 1000;
  for (;;) {
    const status = await client.api<TrainingStatus>('getTrainingStatus');
    if (status.state !== 'running' || performance.now() >= end) return status;
    await new Promise((done) => setTimeout(done, Math.min(100, end - performance.now())));
  }
}

async function trainPhase(
  client: Client,
  studio: Studio,
  dir: string,
  options: { cancels: number; rng: Rng },
): Promise<object> {
  const { cancels, rng } = options;
  const memory = new RssRecorder();
  const started = performance.now();
  const { id } = await openSlide(client, dir);
  const states: Record<string, number> = {};
  const stages: Record<string, number> = {};
  const stopMs: number[] = [];
  for (let i = 1; i <= cancels; i++) {
    const run = await client.api<TrainingStatus>('startTraining', {
      sectionIds: [id],
      preset: 'quick',
      name: `soak ${i}`,
    });
    const at = await runFor(client, rng.uniform(0, MAX_CANCEL_AFTER_S));
    let stage = 'finished';
    if (at.state === 'running') {
      stage = at.globalStep > 0 ? 'epochs' : (at.message ?? 'starting').replace(/:.*$/, '');
      const cancelled = performance.now();
      await client.api('cancelTraining');
      await waitUntilStopped(client);
      stopMs.push(performance.now() - cancelled);
    }
    const ended = await waitUntilStopped(client);
    if (ended.error) console.error(`soak: run ${i} ended with an error: ${ended.error}`);
    states[ended.state] = (states[ended.state] ?? 0) + 1;
    stages[stage] = (stages[stage] ?? 0) + 1;
    const models = await client.api<{ id: string }[]>('listModels');
    if (models.some((m) => m.id === run.modelId)) await client.api('deleteModel', run.modelId);
    // The API reports the run stopped before its worker thread has exited; the sample waits for the exit.
    await studio.training.whenIdle();
    memory.record(i);
    console.error(`soak: run ${i}/${cancels} ${ended.state} (cancelled at: ${stage}), rss ${Math.round(rssMB())} MB`);
  }
  await client.api('closeSection', id);
  return {
    iterations: cancels,
    states,
    cancelledAt: stages,
    medianStopMs: round(median(stopMs)),
    seconds: round((performance.now() - started) / 1000, 1),
    ...memory.summary(cancels),
  };
}
