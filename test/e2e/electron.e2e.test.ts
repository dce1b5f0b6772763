// The Electron shell end to end: launches dist/electron/main.js with Playwright and runs the browser e2e's flow
// through the real core over IPC: the demo's slide and spots, colour by ERBB2 (pixels), a lasso labels spots, a
// reload shows them still labelled. Where the Electron binary is absent (it is downloaded from GitHub on first
// use, so not on offline build machines) the test skips and says so.

import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { _electron, type ElectronApplication, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SectionAnnotations, SectionSpots, SectionSummary } from '../../core/api/api.js';
import { demoPath, packageRoot } from '../../core/resources.js';
import { findElectronBinary } from '../../launch.js';
import { greenPixels, onScreen, pixels } from './helpers.js';

const root = packageRoot();
const main = join(root, 'dist', 'electron', 'main.js');
const binary = findElectronBinary();
const skipReason = !binary
  ? 'Electron binary not available'
  : !existsSync(main) || !existsSync(join(root, 'dist', 'renderer', 'index.html'))
    ? 'app not built (run npm run build)'
    : !existsSync(demoPath())
      ? 'no demo section (run npm run make-demo)'
      : null;
if (skipReason) console.log(`electron e2e skipped: ${skipReason}`);

describe.skipIf(skipReason !== null)('DELST Studio in Electron', () => {
  let app: ElectronApplication;
  let win: Page;
  let scratch: string;
  let section: SectionSummary;
  let spots: SectionSpots;
  const problems: string[] = [];
  const CANCER = 'invasive cancer';

  /** The API as the page has it: through the preload bridge and IPC, the way the renderer calls it. */
  async function call<T>(method: string, args: unknown[]): Promise<T> {
    const reply = await win.evaluate(
      ([m, a]) =>
        (
          globalThis as unknown as {
            delst: { call(m: string, a: unknown[]): Promise<{ ok: boolean; value?: unknown; error?: string }> };
          }
        ).delst.call(m as string, a as unknown[]),
      [method, args] as const,
    );
    if (!reply.ok) throw new Error(reply.error);
    return reply.value as T;
  }

  const stage = () => win.locator('[data-testid=slide]');

  async function spotOnPage(index: number): Promise<{ x: number; y: number }> {
    const box = (await stage().boundingBox())!;
    const p = onScreen(await stage().getAttribute('data-view'), spots, index);
    return { x: box.x + p.x, y: box.y + p.y };
  }

  async function legendCount(name: string): Promise<number> {
    const entry = win.locator(`[data-testid=legend-entry][data-class="${name}"]`);
    return (await entry.count()) === 0 ? 0 : Number(await entry.getAttribute('data-count'));
  }

  beforeAll(async () => {
    const cacheDir = join(root, '.delst-cache', 'e2e');
    mkdirSync(cacheDir, { recursive: true });
    scratch = mkdtempSync(join(tmpdir(), 'delst-e2e-electron-'));
    app = await _electron.launch({
      executablePath: binary ?? undefined,
      // Chromium refuses its sandbox as root (containers, CI).
      args: [...(process.getuid?.() === 0 ? ['--no-sandbox'] : []), main],
      // A project of its own, not the user's.
      env: { ...process.env, DELST_CACHE_DIR: cacheDir, DELST_PROJECT_DIR: join(scratch, 'project') },
    });
    win = await app.firstWindow();
    await win.setViewportSize({ width: 1400, height: 860 });
    win.on('console', (message) => {
      if (message.type() === 'error') problems.push(message.text());
    });
    win.on('pageerror', (error) => problems.push(error.message));
  });

  afterAll(async () => {
    await app?.close();
    if (scratch) rmSync(scratch, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
  });

  it('opens a window on the demo: the bridge and nothing else, the slide and its spots', async () => {
    expect(win.url()).toBe('delst://app/index.html');
    const items = win.locator('[data-testid=section]');
    await expect.poll(() => items.count(), { timeout: 30_000 }).toBeGreaterThan(0);
    expect(await items.first().textContent()).toContain('spots');
    // The page got the bridge and nothing else.
    const bridge = await win.evaluate(() => Object.keys((globalThis as { delst?: object }).delst ?? {}).sort());
    expect(bridge).toEqual(['call', 'tileUrlBase']);
    expect(await win.evaluate(() => typeof (globalThis as { require?: unknown }).require)).toBe('undefined');
    // Electron keeps its native File > Open dialog: no upload buttons.
    expect(await win.locator('[data-testid=upload]').count()).toBe(0);
    [section] = await call<SectionSummary[]>('listSections', []);
    spots = await call<SectionSpots>('getSpots', [section.id]);
    await expect.poll(() => stage().getAttribute('data-tiles-loaded'), { timeout: 60_000 }).toBe('true');
    await expect.poll(() => stage().getAttribute('data-spots-drawn')).toBe(String(section.spots));
    mkdirSync(join(root, 'test-results'), { recursive: true });
    await win.screenshot({ path: join(root, 'test-results', 'electron.png') });
  });

  it('colours the spots by ERBB2: viridis greens in the pixels', async () => {
    await win.mouse.move(5, 5);
    const before = greenPixels(await pixels(await win.screenshot()));
    await win.locator('[data-testid=gene-search]').fill('ERBB2');
    await win.locator('[data-testid=gene-option][data-gene=ERBB2]').click();
    await expect.poll(() => stage().getAttribute('data-colour-gene')).toBe('ERBB2');
    await win.mouse.move(5, 5);
    await win.waitForTimeout(300);
    const image = await pixels(await win.screenshot({ path: join(root, 'test-results', 'electron-erbb2.png') }));
    expect(greenPixels(image)).toBeGreaterThan(Math.max(100, before * 5));
  });

  it('labels the spots inside a lasso, and shows them still labelled after a reload', async () => {
    await win.locator('[data-testid=annotate-toggle]').click();
    expect(await win.locator('[data-testid=label-select]').inputValue()).toBe('annotations');
    await win.locator(`[data-testid=class-item][data-class-name="${CANCER}"] [data-testid=class-pick]`).click();
    await win.locator('[data-testid=tool-lasso]').click();
    const inTissue = spots.ids.flatMap((_, i) => (spots.inTissue[i] ? [i] : []));
    const cx = inTissue.reduce((s, i) => s + spots.x[i], 0) / inTissue.length;
    const cy = inTissue.reduce((s, i) => s + spots.y[i], 0) / inTissue.length;
    const middle = inTissue.reduce((best, i) =>
      Math.hypot(spots.x[i] - cx, spots.y[i] - cy) < Math.hypot(spots.x[best] - cx, spots.y[best] - cy) ? i : best,
    );
    const centre = await spotOnPage(middle);
    const radius = 70;
    await win.mouse.move(centre.x + radius, centre.y);
    await win.mouse.down();
    for (let k = 1; k <= 32; k++) {
      const a = (k / 32) * 2 * Math.PI;
      await win.mouse.move(centre.x + radius * Math.cos(a), centre.y + radius * Math.sin(a));
    }
    await win.mouse.up();
    await expect.poll(() => stage().getAttribute('data-annotate-busy')).toBe('false');
    const inside: number[] = [];
    for (const i of inTissue) {
      const q = await spotOnPage(i);
      if (Math.hypot(q.x - centre.x, q.y - centre.y) < radius - 3) inside.push(i);
    }
    expect(inside.length).toBeGreaterThan(3);
    const { labels } = await call<SectionAnnotations>('getAnnotations', [section.id]);
    for (const i of inside) expect(labels[i], spots.ids[i]).toBe(CANCER);
    const count = labels.filter((l, i) => l === CANCER && spots.inTissue[i]).length;
    await expect.poll(() => legendCount(CANCER)).toBe(count);

    await win.reload();
    await expect.poll(() => stage().getAttribute('data-tiles-loaded'), { timeout: 60_000 }).toBe('true');
    await win.locator('[data-testid=label-select]').selectOption('annotations');
    await expect.poll(() => legendCount(CANCER)).toBe(count);
    await win.mouse.move(5, 5);
    await win.waitForTimeout(300);
    await win.screenshot({ path: join(root, 'test-results', 'electron-annotated.png') });
  });

  it('ran without page errors', () => {
    expect(problems).toEqual([]);
  });
});
