// The GPU check (bench/device) runs on a machine without this repo's node_modules: its bundle must carry everything
// it loads. Here the bundle runs from a folder outside the repo on lavapipe: the adapter report, and a few training
// steps of the fixed configuration on webgpu.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleGpuCheck } from '../../bench/device/bundle.js';
import { LAVAPIPE_ICD } from './support/webgpu-suite.js';

const root = resolve(import.meta.dirname, '../..');
const missing = [
  [LAVAPIPE_ICD, 'scripts/get-lavapipe.sh fetches it'],
  [join(root, 'dist/bench/device/gpu-check.js'), 'npm run build'],
].find(([path]) => !existsSync(path));

describe.skipIf(!!missing)(
  `the GPU check's bundle${missing ? `: skipped, ${missing[0]} is missing (${missing[1]})` : ''}`,
  () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'delst-gpu-check-'));
      await bundleGpuCheck(dir);
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    /** What the subcommands below print (the fields read here). */
    interface Report {
      probe?: { adapter: unknown };
      auto?: unknown;
      device?: string;
      dispatchesPerStep?: number;
      lossFirst?: number;
      lossLast?: number;
    }

    /** `node gpu-check.mjs ARGS` in the bundle's folder, outside the repo; its JSON (Dawn may print before it). */
    const check = (...args: string[]) => {
      const run = spawnSync(process.execPath, [join(dir, 'gpu-check.mjs'), ...args], {
        cwd: dir,
        encoding: 'utf8',
        timeout: 120_000,
        env: { ...process.env, VK_ICD_FILENAMES: LAVAPIPE_ICD, XDG_RUNTIME_DIR: tmpdir() },
      });
      expect(run.status, run.stderr).toBe(0);
      return JSON.parse(run.stdout.slice(run.stdout.indexOf('\n{') + 1 || 0)) as Report;
    };

    it('reports the software adapter, which auto leaves for wasm', () => {
      const report = check('adapters');
      expect(report.probe?.adapter).toMatchObject({ vendor: 'mesa', software: true });
      expect(report.auto).toMatchObject({ name: 'wasm', adapter: null });
    });

    it('trains the fixed configuration on webgpu', () => {
      const report = check('train', '--backend', 'webgpu', '--batch', '2', '--steps', '5', '--warmup', '1', '--json');
      expect(report).toMatchObject({ backend: 'webgpu', batch: 2, tensorCountConstant: true });
      expect(report.device).toMatch(/^software adapter via WebGPU: mesa/);
      expect(report.dispatchesPerStep).toBeGreaterThan(100);
      expect(Number.isFinite(report.lossFirst) && Number.isFinite(report.lossLast)).toBe(true);
    }, 120_000);
  },
);
