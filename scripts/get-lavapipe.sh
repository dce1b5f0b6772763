#!/usr/bin/env bash
# Fetches Mesa's lavapipe (a CPU Vulkan driver) into .cache/lavapipe/ so the WebGPU tests get a real Dawn adapter on
# machines without a GPU. Debian bookworm's own Mesa 22.3 lavapipe is refused by Dawn ("shaderUniform*ArrayDynamic
# Indexing required"); bookworm-backports carries Mesa 25, which Dawn accepts. The package is unpacked, not installed:
# nothing outside .cache/ changes (a system-wide install would also upgrade the libgbm/libEGL that Chromium loads), and
# the tests point the Vulkan loader at it with VK_ICD_FILENAMES. Needs apt-get and dpkg (Debian or Ubuntu) and the
# Debian mirror; without them the WebGPU tests fall back to Chromium's SwiftShader driver, or skip and say why.
set -euo pipefail
cd "$(dirname "$0")/.."

dest="$PWD/.cache/lavapipe"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
echo 'deb http://deb.debian.org/debian bookworm-backports main' >"$work/sources.list"
# A private apt state: the machine's own sources, lists and cache stay as they are (and root is not needed).
apt=(-o "Dir::State::Lists=$work/lists" -o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::Cache=$work/cache" -o "APT::Sandbox::User=$(id -un)" -qq)
apt-get "${apt[@]}" update
(cd "$work" && apt-get "${apt[@]}" download mesa-vulkan-drivers)

rm -rf "$dest.new"
mkdir -p "$dest.new"
dpkg -x "$work"/mesa-vulkan-drivers_*.deb "$dest.new/root"
library="$dest/root/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so"
[ -f "$dest.new/root/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so" ] || {
  echo "get-lavapipe: libvulkan_lvp.so not found in the package (only x86_64 is supported)" >&2
  exit 1
}
# The packaged manifest names the library without a folder; ours names where it was unpacked.
api=$(sed -n 's/.*"api_version": *"\([^"]*\)".*/\1/p' "$dest.new/root/usr/share/vulkan/icd.d/lvp_icd.json")
printf '{ "file_format_version": "1.0.0", "ICD": { "library_path": "%s", "api_version": "%s" } }\n' \
  "$library" "$api" >"$dest.new/lvp_icd.json"
basename "$work"/mesa-vulkan-drivers_*.deb .deb >"$dest.new/VERSION"
rm -rf "$dest"
mv "$dest.new" "$dest"
echo "lavapipe $(cat "$dest/VERSION") in $dest (VK_ICD_FILENAMES=$dest/lvp_icd.json)"
