#!/usr/bin/env bash
# Runs every GPU check and benchmark of @pm/native on the GPU machine, in about
# a minute (hard limit 4). Needs the carried .devbin/ from tests/gpu/prepare.sh.
#
# PM_GPU_REQUIRED (default: 1 when nvidia-smi or /dev/nvidiactl exists) makes a
# CUDA that does not load a failure; without a GPU the checks are reported as
# SKIP and the script exits 0, so it can be dry-run anywhere.
set -u
cd "$(dirname "$0")/../.."

echo "== @pm/native GPU checks: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
if [ ! -f .devbin/node.gz ] || [ ! -f .devbin/gpu-checks.mjs ] || [ ! -f .devbin/pm_native.node ]; then
  echo "FAIL .devbin is incomplete: run tests/gpu/prepare.sh on the build machine and carry .devbin"
  echo "0 passed, 1 failed"
  exit 2
fi

node_bin=/tmp/node
if ! gunzip -c .devbin/node.gz > "$node_bin" || ! chmod +x "$node_bin"; then
  echo "FAIL could not unpack .devbin/node.gz to $node_bin"
  echo "0 passed, 1 failed"
  exit 2
fi
echo "node $("$node_bin" --version)"

if [ -z "${PM_GPU_REQUIRED:-}" ]; then
  if command -v nvidia-smi > /dev/null 2>&1 || [ -e /dev/nvidiactl ]; then
    PM_GPU_REQUIRED=1
  else
    PM_GPU_REQUIRED=0
  fi
fi
export PM_GPU_REQUIRED
echo "GPU required: $PM_GPU_REQUIRED"

if command -v nvidia-smi > /dev/null 2>&1; then
  nvidia-smi -L
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv,noheader
else
  echo "nvidia-smi: not found"
fi
echo "/dev/shm: $(df -h /dev/shm 2> /dev/null | tail -1)"
echo

export PM_NATIVE_ADDON="$PWD/.devbin/pm_native.node"
timeout 230 "$node_bin" .devbin/gpu-checks.mjs
rc=$?
if [ "$rc" -eq 124 ]; then
  echo "FAIL gpu-checks timed out after 230 s"
  echo "0 passed, 1 failed"
fi
exit "$rc"
