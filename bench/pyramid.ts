// `npm run bench -- pyramid [--runs 3] [--slide DIR]`: on a her2st section folder (default B4, a 9272 x 9923 JPEG)
// measures the DeepZoom build (median seconds over fresh caches), peak memory, reopening a cached pyramid, and
// patch extraction for every in-tissue spot at the default 1.25 spot diameters / 112 px.

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import type { SectionImage } from '../core/section/section.js';
import { clearPatchCache, extractPatches, type PatchSection } from '../core/slides/patches.js';
import { SlideCache } from '../core/slides/pyramid.js';
import { openSections } from '../core/readers/open.js';
import { packageRoot } from '../core/resources.js';

// The project's data folder sits beside the checkout (../shared/data).
const DEFAULT_SLIDE = path.join(packageRoot(), '..', 'shared', 'data', 'her2st', 'B4');
const CACHED_OPENS = 5;

export async function benchPyramid(args: string[]): Promise<object> {
  const { values } = parseArgs({ args, options: { runs: { type: 'string' }, slide: { type: 'string' } } });
  const runs = Math.max(1, Number(values.runs ?? 3));
  const { section, image, inTissue } = await readSlide(values.slide ?? DEFAULT_SLIDE);
  const memory = new MemorySampler();

  const buildSeconds: number[] = [];
  const cachedOpenMs: number[] = [];
  for (let run = 0; run < runs; run++) {
    const cacheDir = await fs.mkdtemp(path.join(os.tmpdir(), 'delst-bench-pyramid-'));
    try {
      buildSeconds.push((await timed(() => new SlideCache(cacheDir).pyramid(image))) / 1000);
      // A new SlideCache each time: what a restarted app does when it shows the slide again.
      for (let i = 0; i < CACHED_OPENS; i++)
        cachedOpenMs.push(await timed(() => new SlideCache(cacheDir).pyramid(image)));
    } finally {
      await fs.rm(cacheDir, { recursive: true, force: true });
    }
  }
  const buildPeakRssMB = memory.peakMB();

  memory.reset();
  clearPatchCache();
  const coldMs = await timed(() => extractPatches(section, inTissue));
  const warmMs = await timed(() => extractPatches(section, inTissue));
  const { size, sizeMicrons } = await extractPatches(section, inTissue.slice(0, 1));
  const patchPeakRssMB = memory.peakMB();
  memory.stop();

  return {
    slide: image.kind === 'file' ? image.path : null,
    image: { width: image.width, height: image.height },
    cores: os.availableParallelism(),
    sharpConcurrency: sharp.concurrency(),
    runs,
    build: { medianSeconds: round(median(buildSeconds), 3), seconds: buildSeconds.map((s) => round(s, 3)) },
    cachedOpen: { medianMs: round(median(cachedOpenMs), 2), maxMs: round(Math.max(...cachedOpenMs), 2) },
    memory: {
      buildPeakRssMB,
      patchPeakRssMB,
      // Whole-process high-water mark (KiB from the OS), whatever the phase.
      maxRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
    },
    patches: {
      count: inTissue.length,
      size,
      sizeMicrons,
      // Cold: includes decoding the image once; warm: the decoded image is cached.
      coldPerSecond: Math.round(inTissue.length / (coldMs / 1000)),
      warmPerSecond: Math.round(inTissue.length / (warmMs / 1000)),
      coldMs: Math.round(coldMs),
      warmMs: Math.round(warmMs),
    },
  };
}

/** The slide's section through the app's own reader: its image and its in-tissue spots. */
async function readSlide(dir: string): Promise<{ section: PatchSection; image: SectionImage; inTissue: number[] }> {
  const [section] = await openSections(dir).then((opened) => opened.sections);
  if (!section.image) throw new Error(`${dir}: the section has no image`);
  const inTissue = Array.from(section.spots.inTissue).flatMap((value, spot) => (value === 1 ? [spot] : []));
  return { section, image: section.image, inTissue };
}

/** Samples the resident set every 50 ms (libvips works off the JS thread, so the timer keeps firing). */
class MemorySampler {
  private peak = process.memoryUsage().rss;
  private readonly timer = setInterval(() => this.sample(), 50);

  sample(): void {
    this.peak = Math.max(this.peak, process.memoryUsage().rss);
  }
  peakMB(): number {
    this.sample();
    return Math.round(this.peak / 2 ** 20);
  }
  reset(): void {
    this.peak = process.memoryUsage().rss;
  }
  stop(): void {
    clearInterval(this.timer);
  }
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await work();
  return performance.now() - start;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

function round(value: number, digits: number): number {
  return Number(value.toFixed(digits));
}
