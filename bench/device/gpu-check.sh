#!/usr/bin/env bash
# Issue 7's GPU check, for a lent device machine, in one call (device time is 15 minutes a session, start included):
#   here:   bash bench/device/pack.sh
#   device: run(command="bash bench/device/gpu-check.sh", carry=[".device"], timeout_s=540)
# It runs these steps; $OUT gets summary.json (also printed) and results.tar.gz with each step's JSON and log (the
# device tool brings back at most 8 files), and a failed step's last log lines are printed:
#   adapters        what Dawn offers and what `--backend auto` takes (it must be the hardware adapter)
#   webgpu          `npm run bench -- train --backend webgpu --json`: the engine's fixed configuration, batch 64
#   pytorch         the same configuration in PyTorch on CUDA (bench/reference/delst_train_step.py), TF32 as PyTorch
#                   defaults, then with TF32 off (tfjs computes in full float32)
#   oom             GPU memory filled mid-run: the fault watcher must say 'out-of-memory'; a new process trains
#   webgpu-b256     batch 256, to see how the WebGPU step scales where the GPU is not yet full
#   webgpu-submit200  batch 64 with 200 dispatches per queue submit instead of tfjs's 15 (host cost per submit)
# Steps stop being started once DEADLINE seconds (default 480) have passed, so the call ends inside its limit.
# Rehearsal without a GPU (a copy of the tracked tree plus .device, a CPU Vulkan driver, PyTorch on the CPU):
#   VK_ICD_FILENAMES=$PWD/.cache/lavapipe/lvp_icd.json REFERENCE_DEVICE=cpu PYTHON=/usr/bin/python3 QUICK=1 \
#     OUT=/tmp/gpu-check-out bash bench/device/gpu-check.sh
set -uo pipefail
cd "$(dirname "$0")/../.."

out="${OUT:-/tmp/gpu-check-out}"
work="$(mktemp -d)"
python="${PYTHON:-python3}"
reference_device="${REFERENCE_DEVICE:-cuda}"
deadline="${DEADLINE:-480}"
results="$work/results"
mkdir -p "$out" "$results"
start=$SECONDS

# The Vulkan loader and, where nothing else is set, NVIDIA's Vulkan driver (the device tool's README).
if ! ldconfig -p | grep -q 'libvulkan.so.1'; then
  for f in .device/gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
nvidia_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" ] && [ -f "$nvidia_icd" ]; then export VK_DRIVER_FILES="$nvidia_icd"; fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$work}"

xz -dc .device/node.xz >"$work/node" && chmod +x "$work/node"
xz -dc .device/gpu-check.mjs.xz >"$work/gpu-check.mjs"
tar -C "$work" -xJf .device/node_modules.tar.xz
node="$work/node"
check="$work/gpu-check.mjs"
{
  nvidia-smi 2>&1 || true
  echo "node $("$node" --version); $("$python" -c 'import torch; print("torch", torch.__version__)' 2>&1)"
  echo "VK_ICD_FILENAMES=${VK_ICD_FILENAMES:-} VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"
} >"$results/machine.txt"

if [ -n "${QUICK:-}" ]; then sizes=(--batch 4 --steps 5 --warmup 1) big=(--batch 8 --steps 5 --warmup 1)
else sizes=(--batch 64 --steps 7 --warmup 2) big=(--batch 256 --steps 5 --warmup 2); fi

# step NAME TIMEOUT COMMAND...: stdout to NAME.json, stderr to NAME.log; skipped past the deadline.
step() {
  local name=$1 limit=$2
  shift 2
  if ((SECONDS - start > deadline)); then
    echo "$name: skipped (deadline)"
    return
  fi
  local t0=$SECONDS status
  timeout "$limit" "$@" >"$results/$name.json" 2>"$results/$name.log"
  status=$?
  echo "$name: exit $status in $((SECONDS - t0)) s"
  if [ "$status" -ne 0 ]; then tail -n 8 "$results/$name.log" | sed 's/^/    /'; fi
}

step adapters 90 "$node" "$check" adapters
step webgpu 240 "$node" "$check" train --backend webgpu "${sizes[@]}" --json
reference=("$python" bench/reference/delst_train_step.py --device "$reference_device" "${sizes[@]}" --json)
step pytorch 120 "${reference[@]}"
step pytorch-no-tf32 120 "${reference[@]}" --no-tf32
step oom 180 "$node" "$check" oom
step webgpu-b256 180 "$node" "$check" train --backend webgpu "${big[@]}" --json
step webgpu-submit200 180 "$node" "$check" train --backend webgpu "${sizes[@]}" --submit-batch 200 --json

# The figures the issue asks for, and their ratio (PyTorch's median step over ours: 0.5 is the target).
"$node" --input-type=module -e "
  import { existsSync, readFileSync } from 'node:fs';
  // Dawn prints GPU errors on stdout too: the JSON object starts at the last line that is a bare '{'.
  const read = (name) => {
    const file = '$results/' + name + '.json';
    if (!existsSync(file)) return null;
    const text = readFileSync(file, 'utf8');
    try { return JSON.parse(text.slice(text.startsWith('{') ? 0 : text.lastIndexOf('\\n{') + 1)); } catch { return null; }
  };
  const [adapters, webgpu, pytorch, noTf32, big, oom, submit200] =
    ['adapters', 'webgpu', 'pytorch', 'pytorch-no-tf32', 'webgpu-b256', 'oom', 'webgpu-submit200'].map(read);
  const ratio = (ref) => (webgpu && ref ? Number((ref.medianStepSeconds / webgpu.medianStepSeconds).toFixed(3)) : null);
  console.log(JSON.stringify({
    autoPicks: adapters?.auto ?? null,
    webgpu: webgpu && { device: webgpu.device, batch: webgpu.batch, medianStepSeconds: webgpu.medianStepSeconds,
      spotsPerSecond: webgpu.spotsPerSecond, lossFirst: webgpu.lossFirst, lossLast: webgpu.lossLast },
    pytorch: pytorch && { device: pytorch.device, medianStepSeconds: pytorch.medianStepSeconds },
    pytorchNoTf32: noTf32 && { medianStepSeconds: noTf32.medianStepSeconds },
    ratioToPytorch: ratio(pytorch),
    webgpuDispatchesPerStep: webgpu?.dispatchesPerStep ?? null,
    ratioToPytorchNoTf32: ratio(noTf32),
    webgpuBatch256: big && { medianStepSeconds: big.medianStepSeconds, spotsPerSecond: big.spotsPerSecond },
    webgpuSubmitBatch200: submit200 && { medianStepSeconds: submit200.medianStepSeconds },
    oom: oom && { allocatedGiB: oom.allocatedGiB, fault: oom.fault, during: oom.during,
      trainsAgain: !!oom.afterInNewProcess?.medianStepSeconds },
  }, null, 2));
" | tee "$out/summary.json"
tar -C "$results" -czf "$out/results.tar.gz" .
rm -rf "$work"
