// The webgpu suite on SwiftShader, the CPU Vulkan driver that Debian's chromium package ships: a second, independent
// Vulkan implementation under the same kernels and training checks as lavapipe in webgpu.test.ts.

import { webgpuSuite } from './support/webgpu-suite.js';

webgpuSuite({
  name: 'SwiftShader',
  icd: '/usr/lib/chromium/vk_swiftshader_icd.json',
  howToGet: "Debian's chromium package ships it",
  adapter: { vendor: 'google', architecture: 'swiftshader' },
  deviceLine: /^software adapter via WebGPU: google swiftshader \(SwiftShader.*\), software$/,
});
