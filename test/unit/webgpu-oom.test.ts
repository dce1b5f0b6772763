// A real out-of-memory on a WebGPU device in the middle of a run, on Mesa's lavapipe: its Vulkan driver refuses a
// buffer of the adapter's maxBufferSize (4 GiB) with VK_ERROR_OUT_OF_DEVICE_MEMORY, which Dawn reports as a
// GPUOutOfMemoryError. The run must end with a message that says so and the last good checkpoint, and `--resume`
// must finish it on the GPU once the memory is free. Its own file: a device that ran out of memory stays faulted
// for the rest of the process.

import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webgpuDevice } from '../../core/engine/webgpu/start.js';
import {
  A1,
  expectResumableAfterGpuFailure,
  LAVAPIPE_ICD,
  SPOTS,
  tinySection,
  trainFailingInEpoch2,
} from './support/webgpu-suite.js';

const root = resolve(import.meta.dirname, '../..');
const missing = [
  [LAVAPIPE_ICD, 'scripts/get-lavapipe.sh fetches it'],
  [A1, 'the HER2ST data'],
  [join(root, 'dist/cli/train.js'), 'npm run build'],
].find(([path]) => !existsSync(path));
process.env.VK_ICD_FILENAMES = LAVAPIPE_ICD; // read when Dawn creates its instance, in the run below
process.env.XDG_RUNTIME_DIR ??= tmpdir();

describe.skipIf(!!missing)(
  `webgpu out of memory on lavapipe${missing ? `: skipped, ${missing[0]} is missing (${missing[1]})` : ''}`,
  () => {
    let tmp: string;
    beforeAll(async () => {
      tmp = await mkdtemp(join(tmpdir(), 'delst-webgpu-oom-'));
    });
    afterAll(async () => {
      await rm(tmp, { recursive: true, force: true });
    });

    it('ends the run with an out-of-memory message and a checkpoint that --resume finishes on the GPU', async () => {
      const tiny = await tinySection(join(tmp, 'A1-tiny'), SPOTS);
      const out = join(tmp, 'run');
      const hogs: GPUBuffer[] = [];
      const error = await trainFailingInEpoch2(tiny, out, () => {
        const device = webgpuDevice()!;
        hogs.push(device.createBuffer({ size: device.limits.maxBufferSize, usage: GPUBufferUsage.STORAGE }));
      });
      for (const buffer of hogs) buffer.destroy();
      const summary = await expectResumableAfterGpuFailure(
        error,
        /the GPU ran out of memory: .*OUT_OF_DEVICE_MEMORY.*/,
        tiny,
        out,
        'webgpu',
      );
      expect(summary.device).toMatch(/^software adapter via WebGPU: mesa/);
    }, 120_000);
  },
);
