// Helpers of the end-to-end tests (browser and Electron): the app in a page, where a spot is on screen, a
// screenshot's pixels.

import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import sharp from 'sharp';
import type { SectionSpots } from '../../core/api/api.js';
import type { Studio } from '../../core/api/studio.js';
import { packageRoot } from '../../core/resources.js';
import { startBrowserServer, type BrowserServer } from '../../server/browser-server.js';
import { CHROMIUM, CHROMIUM_ARGS } from '../../bench/chromium.js';

/** The slide cache of the e2e tests, made if need be: pyramids are content-keyed, kept across runs like a user's. */
export function e2eCacheDir(): string {
  const dir = join(packageRoot(), '.delst-cache', 'e2e');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * The app at `url` (the browser server's, with its token) in a new 1400 x 860 page, drawn with canvas tiles and
 * WebGL spots; the page's console errors and uncaught errors go to `problems`.
 */
export async function openApp(
  browser: Browser,
  url: string,
  problems: string[],
  options: { acceptDownloads?: boolean } = {},
): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 860 }, ...options });
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(message.text());
  });
  page.on('pageerror', (error) => problems.push(error.message));
  await page.goto(`${url}&drawer=canvas&overlay=webgl`);
  return page;
}

/**
 * `studio` behind a browser-mode server on the built renderer, and headless Chromium showing it (see openApp). On a
 * failure, what did start is closed before the error goes on: the caller never got it to close.
 */
export async function launchApp(
  studio: Parameters<typeof startBrowserServer>[0]['studio'],
  problems: string[],
  options: { acceptDownloads?: boolean } = {},
): Promise<{ server: BrowserServer; browser: Browser; page: Page }> {
  const server = await startBrowserServer({ studio, rendererDir: join(packageRoot(), 'dist', 'renderer') });
  let browser: Browser | undefined;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    return { server, browser, page: await openApp(browser, server.url, problems, options) };
  } catch (error) {
    await browser?.close();
    await server.close();
    throw error;
  }
}

/**
 * Closes what a suite started, each part only if it did start: the browser, the server, the studio (its workers
 * too) and the scratch folder.
 */
export async function closeApp(
  { browser, server, studio }: { browser?: Browser; server?: BrowserServer; studio?: Studio },
  scratch?: string,
): Promise<void> {
  await browser?.close();
  await server?.close();
  await studio?.shutdown();
  if (scratch) rmSync(scratch, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
}

/** A spot's centre in the viewer, from the overlay's slide -> screen transform (data-view). */
export function onScreen(view: string | null, spots: SectionSpots, index: number): { x: number; y: number } {
  const [ox, oy, ax, ay, bx, by] = (view ?? '').split(',').map(Number);
  const [x, y] = [spots.x[index], spots.y[index]];
  return { x: ox + ax * x + bx * y, y: oy + ay * x + by * y };
}

/** A screenshot's pixels (RGB). */
export async function pixels(
  png: Buffer,
): Promise<{ rgb: (x: number, y: number) => number[]; width: number; height: number }> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const rgb = (x: number, y: number) => {
    const at = (Math.round(y) * info.width + Math.round(x)) * 3;
    return [data[at], data[at + 1], data[at + 2]];
  };
  return { rgb, width: info.width, height: info.height };
}

/** Pixels a viridis colouring makes green (H&E is pink and purple, magma has no green). */
export function greenPixels(image: Awaited<ReturnType<typeof pixels>>): number {
  let n = 0;
  for (let y = 0; y < image.height; y += 2) {
    for (let x = 0; x < image.width; x += 2) {
      const [r, g, b] = image.rgb(x, y);
      if (g > r + 30 && g > b + 10) n++;
    }
  }
  return n;
}
