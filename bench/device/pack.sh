#!/usr/bin/env bash
# Packs into .device/ (git-ignored) what bench/device/gpu-check.sh needs on a lent GPU machine, which has PyTorch
# but no Node, no node_modules and no network, and takes at most 64 MiB with the tracked tree:
#   node.xz                 this machine's Node binary (x86-64 Linux)
#   gpu-check.mjs.xz        bench/device/gpu-check.ts with the engine and TensorFlow.js bundled into one file
#   node_modules.tar.xz     what the bundle loads at run time: the webgpu package with Dawn for linux-x64 only, the
#                           wasm backend's binaries (the CPU fallback of `--backend auto`), and a stand-in for sharp
#                           (image decoding, which the GPU check never does)
#   gl/libvulkan1*.deb      the Vulkan loader, in case the machine lacks it (the device tool's README)
# Then: run(command="bash bench/device/gpu-check.sh", carry=[".device"], timeout_s=540).
set -euo pipefail
cd "$(dirname "$0")/../.."

npm run build:node >/dev/null
dest=.device
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
rm -rf "$dest" && mkdir -p "$dest/gl"

node --input-type=module -e "
  import { build } from 'rolldown';
  await build({
    input: 'dist/bench/device/gpu-check.js',
    platform: 'node',
    external: ['webgpu', 'sharp'],
    logLevel: 'warn',
    output: {
      file: '$stage/gpu-check.mjs',
      format: 'esm',
      codeSplitting: false,
      // The wasm backend's CommonJS code locates its files with __dirname, which an ES module lacks.
      banner: 'import { fileURLToPath as __toPath } from \"node:url\"; const __dirname = __toPath(new URL(\".\", import.meta.url));',
    },
  });
"
xz -T0 -6 -c "$stage/gpu-check.mjs" >"$dest/gpu-check.mjs.xz"
xz -T0 -6 -c "$(command -v node)" >"$dest/node.xz"

modules="$stage/node_modules"
mkdir -p "$modules/webgpu/dist/linux-x64" "$modules/sharp" "$modules/@tensorflow/tfjs-backend-wasm/dist" \
  "$modules/@tensorflow/tfjs-backend-wasm/wasm-out"
cp node_modules/webgpu/{package.json,index.js} "$modules/webgpu/"
cp node_modules/webgpu/dist/linux-x64/dawn.node "$modules/webgpu/dist/linux-x64/"
wasm=node_modules/@tensorflow/tfjs-backend-wasm
cp "$wasm/package.json" "$modules/@tensorflow/tfjs-backend-wasm/"
cp "$wasm"/dist/tf-backend-wasm.node.js "$wasm"/dist/*.wasm "$modules/@tensorflow/tfjs-backend-wasm/dist/"
cp "$wasm"/wasm-out/tfjs-backend-wasm-threaded-simd.{js,worker.js} "$modules/@tensorflow/tfjs-backend-wasm/wasm-out/"
echo '{ "name": "sharp", "type": "module", "main": "index.js" }' >"$modules/sharp/package.json"
echo 'export default function sharp() { throw new Error("sharp is not carried to the GPU check machine"); }' \
  >"$modules/sharp/index.js"
tar -C "$stage" -cJf "$dest/node_modules.tar.xz" node_modules

(cd "$dest/gl" && apt-get -qq -o APT::Architecture=amd64 -o "APT::Sandbox::User=$(id -un)" download libvulkan1)

du -sh "$dest"/*
total=$(($(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1) + $(du -sb "$dest" | cut -f1)))
echo "tracked tree + .device: $((total / 1048576)) MiB of the 64 MiB a device call may carry"
[ "$total" -lt $((64 * 1048576)) ] || {
  echo "pack: too large for one device call" >&2
  exit 1
}
