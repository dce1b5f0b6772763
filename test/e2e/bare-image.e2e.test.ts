// End to end, H&E without ST: a bare image (HER2ST A2's H&E copied alone into a folder, so it is only an image) and
// A1 with its pathologist labels as the reference, in headless Chromium through the browser-mode server. The user
// types the pixel size, tiles the tissue, picks the base model and colours the tiles by predicted class. Pixel
// checks: tiles are drawn (the screen changes under them when the spots are shown) and nothing is drawn on the
// black background. Screenshots go to /tmp/shots/. Needs `npm run build` and Debian's chromium.

import { copyFileSync, existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SectionSpots } from '../../core/api/api.js';
import { Studio } from '../../core/api/studio.js';
import { packageRoot } from '../../core/resources.js';
import type { BrowserServer } from '../../server/browser-server.js';
import { CHROMIUM } from '../../bench/chromium.js';
import { closeApp, e2eCacheDir, launchApp, onScreen, pixels } from './helpers.js';

const root = packageRoot();
const rendererDir = join(root, 'dist', 'renderer');
const her2st = resolve(root, '..', 'shared', 'data', 'her2st');
const SHOTS = '/tmp/shots';
/** A2's image: 0.9163 um per full-resolution pixel, image = full resolution * 0.287109: 3.191 um per pixel. */
const A2_MPP = 3.191;

const skipReason = !existsSync(CHROMIUM)
  ? `no Chromium at ${CHROMIUM} (apt-get install -y chromium)`
  : !existsSync(join(rendererDir, 'index.html'))
    ? 'renderer not built (run npm run build)'
    : !existsSync(join(her2st, 'A2', 'image.png')) || !existsSync(join(her2st, 'A1'))
      ? 'needs ../shared/data/her2st/A1 and A2'
      : null;
if (skipReason) console.log(`bare image e2e skipped: ${skipReason}`);

describe.skipIf(skipReason !== null)('a bare H&E image: tile, predict, colour (browser mode)', () => {
  let studio: Studio;
  let server: BrowserServer;
  let browser: Browser;
  let page: Page;
  let scratch: string;
  let bareId: string;
  const problems: string[] = [];

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'delst-e2e-bare-'));
    copyFileSync(join(her2st, 'A2', 'image.png'), join(scratch, 'A2-he.png'));
    mkdirSync(SHOTS, { recursive: true });
    studio = new Studio({ cacheDir: e2eCacheDir() });
    bareId = (await studio.openPath(join(scratch, 'A2-he.png'))).opened[0].id;
    await studio.openPath(join(her2st, 'A1'));
    ({ server, browser, page } = await launchApp(studio, problems));
  });

  afterAll(() => closeApp({ browser, server, studio }, scratch));

  it('tiles the tissue, colours the tiles by predicted class, and draws nothing on the background', async () => {
    const stage = page.locator(`[data-testid=slide][data-section-id="${bareId}"]`);
    await expect.poll(() => stage.getAttribute('data-tiles-loaded'), { timeout: 60_000 }).toBe('true');
    expect(await page.locator('[data-testid=image-only]').count()).toBe(1);

    // The pixel size is required: the button waits for it.
    const button = page.locator('[data-testid=tile-button]');
    expect(await button.isDisabled()).toBe(true);
    await page.locator('[data-testid=tile-mpp]').fill(String(A2_MPP));
    // Every other tile (200 um apart, like the ST array): a quarter of the tiles to embed, keeping the test short.
    await page.locator('[data-testid=tile-spacing]').fill('200');
    await button.click();
    await expect.poll(() => page.locator('[data-testid=tile-count]').count(), { timeout: 30_000 }).toBe(1);
    const spots: SectionSpots = await studio.getSpots(bareId);
    expect(spots.ids.length).toBeGreaterThan(200);
    expect(spots.diameter).toBeCloseTo(100 / A2_MPP, 3); // A1's spot diameter
    expect(await page.locator('[data-testid=tile-count]').textContent()).toBe(`${spots.ids.length} tiles`);
    await expect.poll(() => stage.getAttribute('data-spots-drawn')).toBe(String(spots.ids.length));
    // The section list shows the tiles as spots, and the pixel size given.
    const listed = page.locator(`[data-testid=section][data-section-id="${bareId}"] [data-testid=spots]`);
    await expect.poll(() => listed.textContent()).toBe(`${spots.ids.length} spots`);

    const model = page.locator('[data-testid=prediction-model]');
    await expect.poll(() => model.locator('option').count()).toBeGreaterThan(1);
    await model.selectOption('base');
    await page.locator('[data-testid=label-select]').selectOption({ label: 'Predicted class (pathologist)' });
    // While it embeds: phase, percentage and ETA with Cancel; a cancel is said quietly and Retry starts again.
    const progress = page.locator('[data-testid=inference-progress]');
    const bar = progress.locator('[role=progressbar]');
    await expect.poll(() => progress.getAttribute('data-phase'), { timeout: 60_000 }).toBe('embedding');
    await expect
      .poll(async () => Number(await bar.getAttribute('aria-valuenow')), { timeout: 30_000 })
      .toBeGreaterThan(0);
    expect(await progress.locator('[data-testid=inference-phase]').textContent()).toMatch(/Embedding .+ of \d+ spots/);
    await expect.poll(() => progress.locator('[data-testid=inference-eta]').textContent()).toMatch(/ETA \d+/);
    await progress.screenshot({ path: join(SHOTS, 'inference-progress.png') });
    await page.screenshot({ path: join(SHOTS, 'inference-progress-page.png') });
    const before = problems.length;
    await progress.locator('[data-testid=inference-cancel]').click();
    const notice = page.locator('[data-testid=prediction-status]');
    await expect.poll(() => notice.textContent(), { timeout: 30_000 }).toContain('Prediction cancelled');
    // The cancelled call's error reply is the one thing Chromium logs about it.
    expect(problems.splice(before)).toEqual([
      'Failed to load resource: the server responded with a status of 400 (Bad Request)',
    ]);
    expect(await notice.getAttribute('class')).not.toContain('warn');
    await notice.screenshot({ path: join(SHOTS, 'inference-cancelled.png') });
    expect(await stage.getAttribute('data-predicting')).toBe('false');
    expect(await progress.count()).toBe(0);
    await page.locator('[data-testid=prediction-retry]').click();
    await expect.poll(() => progress.count()).toBe(1);
    await expect.poll(() => stage.getAttribute('data-predicting'), { timeout: 120_000 }).toBe('false');
    expect(await progress.count()).toBe(0);
    expect(await page.locator('[data-testid=prediction-status]').count()).toBe(0);
    const entries = page.locator('[data-testid=legend-entry]');
    await expect.poll(() => entries.count()).toBeGreaterThan(0);
    let total = 0;
    for (const entry of await entries.all()) total += Number(await entry.getAttribute('data-count'));
    expect(total).toBe(spots.ids.length);

    await page.mouse.move(5, 5);
    await page.waitForTimeout(400);
    const coloured = await page.screenshot({ path: join(SHOTS, 'bare-image-predicted.png') });
    const view = await stage.getAttribute('data-view');
    await page.locator('[data-testid=spots-on]').uncheck();
    await page.waitForTimeout(400);
    const plain = await page.screenshot({ path: join(SHOTS, 'bare-image-tiles-off.png') });
    await page.locator('[data-testid=spots-on]').check();

    const a = await pixels(coloured);
    const b = await pixels(plain);
    const box = await stage.boundingBox();
    // Panels over the slide (legend, zoom buttons, scale bar) hide what is under them in both shots.
    const panels = await Promise.all(
      ['[data-testid=legend]', '.zoom', '.bottom-left'].map((css) => stage.locator(css).first().boundingBox()),
    );
    const underPanel = (p: { x: number; y: number }) =>
      panels.some(
        (r) =>
          r !== null &&
          p.x + box!.x >= r.x - 8 &&
          p.x + box!.x <= r.x + r.width + 8 &&
          p.y + box!.y >= r.y - 8 &&
          p.y + box!.y <= r.y + r.height + 8,
      );
    const inStage = (p: { x: number; y: number }) =>
      p.x > 4 && p.y > 4 && p.x < box!.width - 4 && p.y < box!.height - 4 && !underPanel(p);
    const changed = (p: { x: number; y: number }) => {
      const [x, y] = [p.x + box!.x, p.y + box!.y];
      return a.rgb(x, y).reduce((s, v, c) => s + Math.abs(v - b.rgb(x, y)[c]), 0) > 30;
    };
    // Every tile centre on screen is painted over.
    const centres = spots.ids.map((_, i) => onScreen(view, spots, i)).filter(inStage);
    expect(centres.length).toBeGreaterThan(150);
    const painted = centres.filter(changed).length / centres.length;
    expect(painted).toBeGreaterThan(0.95);
    // Nothing on the background: image points two tile spacings from every tile stay as they were.
    const spacing = 200 / A2_MPP;
    const far: { x: number; y: number }[] = [];
    for (let y = 10; y < 2136; y += 40) {
      for (let x = 10; x < 1990; x += 40) {
        const near = spots.x.some((sx, i) => Math.hypot(sx - x, spots.y[i] - y) < 2 * spacing);
        if (near) continue;
        const p = onScreen(view, { ...spots, x: [x], y: [y] }, 0);
        if (inStage(p)) far.push(p);
      }
    }
    expect(far.length).toBeGreaterThan(300);
    expect(far.filter(changed)).toEqual([]);
    expect(problems).toEqual([]);
  }, 240_000);
});
