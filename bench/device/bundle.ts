// `node dist/bench/device/bundle.js DIR`: the GPU check as one self-contained folder, for a machine with Node but
// without this repo's node_modules: DIR/gpu-check.mjs (bench/device/gpu-check.ts with the engine and TensorFlow.js
// bundled by rolldown) and DIR/node_modules with what it loads at run time: the webgpu package with Dawn for
// linux-x64, the wasm backend's binaries (the CPU fallback of `--backend auto`) and a stand-in for sharp (image
// decoding, which the GPU check never does). pack.sh compresses it for the device tool; a test runs it.

import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { build } from 'rolldown';
import { packageRoot } from '../../core/resources.js';

/** Files of node_modules the bundle loads, as paths under node_modules. */
const CARRIED = [
  'webgpu/package.json',
  'webgpu/index.js',
  'webgpu/dist/linux-x64/dawn.node',
  '@tensorflow/tfjs-backend-wasm/package.json',
  '@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.node.js',
  '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm',
  '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm',
  '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm',
  '@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.js',
  '@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.worker.js',
];

export async function bundleGpuCheck(dir: string): Promise<void> {
  const root = packageRoot();
  await build({
    input: path.join(root, 'dist/bench/device/gpu-check.js'),
    platform: 'node',
    external: ['webgpu', 'sharp'],
    logLevel: 'warn',
    output: {
      file: path.join(dir, 'gpu-check.mjs'),
      format: 'esm',
      codeSplitting: false,
      // The wasm backend's CommonJS code locates its files with __dirname, which an ES module lacks.
      banner:
        'import { fileURLToPath as __toPath } from "node:url"; const __dirname = __toPath(new URL(".", import.meta.url));',
    },
  });
  for (const file of CARRIED) {
    const target = path.join(dir, 'node_modules', file);
    await mkdir(path.dirname(target), { recursive: true });
    await copyFile(path.join(root, 'node_modules', file), target);
  }
  const sharp = path.join(dir, 'node_modules/sharp');
  await mkdir(sharp, { recursive: true });
  await writeFile(path.join(sharp, 'package.json'), '{ "name": "sharp", "type": "module", "main": "index.js" }\n');
  await writeFile(
    path.join(sharp, 'index.js'),
    'export default function sharp() { throw new Error("sharp is not carried to the GPU check machine"); }\n',
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = process.argv[2];
  if (!dir) {
    console.error('usage: node dist/bench/device/bundle.js DIR');
    process.exitCode = 2;
  } else {
    await bundleGpuCheck(path.resolve(dir));
  }
}
