// The webgpu backend on Mesa's lavapipe, a CPU Vulkan driver: Mesa 25 from bookworm-backports, unpacked into
// .cache/lavapipe by scripts/get-lavapipe.sh (.ci/run does this; Dawn refuses bookworm's own Mesa 22.3). The same
// suite runs on Chromium's SwiftShader in webgpu-swiftshader.test.ts. Also here: telling software adapters from GPUs.

import { describe, expect, it } from 'vitest';
import { isSoftwareAdapter } from '../../core/engine/webgpu/adapter.js';
import { LAVAPIPE_ICD, webgpuSuite } from './support/webgpu-suite.js';

describe('software adapter detection', () => {
  it('knows SwiftShader, llvmpipe and fallback adapters from GPUs', () => {
    expect(isSoftwareAdapter({ vendor: 'google', architecture: 'swiftshader', isFallbackAdapter: false })).toBe(true);
    expect(isSoftwareAdapter({ vendor: 'mesa', description: 'llvmpipe (LLVM 15.0.6, 256 bits)' })).toBe(true);
    expect(isSoftwareAdapter({ vendor: 'mesa', architecture: 'software', description: 'a future CPU driver' })).toBe(
      true,
    );
    expect(isSoftwareAdapter({ vendor: 'microsoft', description: 'Microsoft Basic Render Driver' })).toBe(true);
    expect(isSoftwareAdapter({ vendor: 'intel', architecture: 'gen-12lp', isFallbackAdapter: true })).toBe(true);
    expect(
      isSoftwareAdapter({ vendor: 'nvidia', architecture: 'ampere', description: 'NVIDIA GeForce RTX 3060' }),
    ).toBe(false);
    expect(
      isSoftwareAdapter({ vendor: 'mesa', architecture: 'gfx1030', description: 'AMD Radeon RX 6800 (RADV)' }),
    ).toBe(false);
    expect(isSoftwareAdapter({ vendor: 'apple', architecture: 'metal-3', description: 'Apple M2' })).toBe(false);
  });
});

webgpuSuite({
  name: 'lavapipe',
  icd: LAVAPIPE_ICD,
  howToGet: 'scripts/get-lavapipe.sh fetches it',
  adapter: { vendor: 'mesa', architecture: 'software' },
  deviceLine: /^software adapter via WebGPU: mesa software \(llvmpipe: Mesa .*\), software$/,
});
