#!/usr/bin/env bash
# Packs into .device/ (git-ignored) what bench/device/gpu-check.sh needs on a lent GPU machine, which has PyTorch
# but no Node, no node_modules and no network, and takes at most 64 MiB with the tracked tree:
#   node.xz                 this machine's Node binary (x86-64 Linux)
#   gpu-check.mjs.xz        bench/device/gpu-check.ts with the engine and TensorFlow.js in one file (bundle.ts)
#   node_modules.tar.xz     what the bundle loads at run time (bundle.ts says what)
#   gl/libvulkan1*.deb      the Vulkan loader, in case the machine lacks it (the device tool's README)
# Then: run(command="bash bench/device/gpu-check.sh", carry=[".device"], timeout_s=540).
set -euo pipefail
cd "$(dirname "$0")/../.."

npm run build:node >/dev/null
dest=.device
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
rm -rf "$dest" && mkdir -p "$dest/gl"

node dist/bench/device/bundle.js "$stage"
xz -T0 -6 -c "$stage/gpu-check.mjs" >"$dest/gpu-check.mjs.xz"
xz -T0 -6 -c "$(command -v node)" >"$dest/node.xz"
tar -C "$stage" -cJf "$dest/node_modules.tar.xz" node_modules

(cd "$dest/gl" && apt-get -qq -o APT::Architecture=amd64 -o "APT::Sandbox::User=$(id -un)" download libvulkan1)

du -sh "$dest"/*
total=$(($(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1) + $(du -sb "$dest" | cut -f1)))
echo "tracked tree + .device: $((total / 1048576)) MiB of the 64 MiB a device call may carry"
[ "$total" -lt $((64 * 1048576)) ] || {
  echo "pack: too large for one device call" >&2
  exit 1
}
