#!/usr/bin/env bash
# Sets up a fresh Debian 12 / Ubuntu machine for torchedit: the system packages it needs
# (apt, as root) and the npm dependencies with the native addon (npm ci runs the install step:
# a matching prebuild, else a source build). Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."

# libtorch (C++ and, for test fixtures and parity oracles, Python's torch), OpenBLAS (without
# it matrix products fall back to the reference BLAS, ~20x slower), build tools for a source
# build, python3-regex for the CLIP tokenizer oracle, python3-pil for the shapes-64 scripts
# (held-out pictures and their analysis in the evaluation and the default-model test),
# clang-format for `npm run lint` (the C++ side), chromium for the web page's test (driven by
# playwright-core, which downloads no browser of its own), redis-server for the scale-out tests
# (test/server/scale.test.ts starts its own on a free loopback port; they fail without it).
packages=(libtorch-dev libopenblas0-pthread python3-torch python3-regex python3-pil cmake g++ make clang-format chromium redis-server)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

start=$(date +%s)
# onnxruntime-node (a dev dependency: bench/unet.ts's peer) bundles its CPU library; its postinstall
# would fetch the CUDA provider from NuGet, which these machines cannot reach and the bench does not use.
export ONNXRUNTIME_NODE_INSTALL=skip
npm ci --no-audit --no-fund
npm run build:ts --silent
echo "setup: npm ci and build took $(( $(date +%s) - start )) s"
