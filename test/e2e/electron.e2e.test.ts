// The Electron shell end to end: launches dist/electron/main.js with Playwright and checks the window shows the
// section list from the real core over IPC. Where the Electron binary is absent (it is downloaded from GitHub on
// first use, so not on offline build machines) the test skips and says so.

import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { _electron } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { demoPath, packageRoot } from '../../core/resources.js';
import { findElectronBinary } from '../../launch.js';

const root = packageRoot();
const main = join(root, 'dist', 'electron', 'main.js');
const binary = findElectronBinary();
const skipReason = !binary
  ? 'Electron binary not available'
  : !existsSync(main) || !existsSync(join(root, 'dist', 'renderer', 'index.html'))
    ? 'app not built (run npm run build)'
    : null;
if (skipReason) console.log(`electron e2e skipped: ${skipReason}`);

describe.skipIf(skipReason !== null)('DELST Studio in Electron', () => {
  it('opens a window that lists the demo section', async () => {
    const cacheDir = join(root, '.delst-cache', 'e2e');
    mkdirSync(cacheDir, { recursive: true });
    const app = await _electron.launch({
      executablePath: binary ?? undefined,
      // Chromium refuses its sandbox as root (containers, CI).
      args: [...(process.getuid?.() === 0 ? ['--no-sandbox'] : []), main],
      // A project of its own, not the user's.
      env: { ...process.env, DELST_CACHE_DIR: cacheDir, DELST_PROJECT_DIR: join(root, '.delst-cache', 'e2e-project') },
    });
    try {
      const win = await app.firstWindow();
      expect(win.url()).toBe('delst://app/index.html');
      const items = win.locator('[data-testid=section]');
      await expect.poll(() => items.count(), { timeout: 30_000 }).toBeGreaterThan(0);
      expect(await items.first().textContent()).toContain('spots');
      // The page got the bridge and nothing else.
      const bridge = await win.evaluate(() => Object.keys((globalThis as { delst?: object }).delst ?? {}).sort());
      expect(bridge).toEqual(['call', 'tileUrlBase']);
      expect(await win.evaluate(() => typeof (globalThis as { require?: unknown }).require)).toBe('undefined');
      if (existsSync(demoPath())) {
        const stage = win.locator('[data-testid=slide]');
        await expect.poll(() => stage.getAttribute('data-tiles-loaded'), { timeout: 60_000 }).toBe('true');
      }
      mkdirSync(join(root, 'test-results'), { recursive: true });
      await win.screenshot({ path: join(root, 'test-results', 'electron.png') });
    } finally {
      await app.close();
    }
  });
});
