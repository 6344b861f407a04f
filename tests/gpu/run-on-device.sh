#!/usr/bin/env bash
# Runs every GPU check and benchmark on the GPU machine within 4 minutes:
# .devbin/gpu-checks.mjs (the addon: IPC across processes, copy bandwidth) and,
# when bundled, .devbin/agent-gpu-check.mjs (the tier agent's GPU tier).
# Needs the carried .devbin/ from tests/gpu/prepare.sh.
#
# PM_GPU_REQUIRED (default: 1 when nvidia-smi or /dev/nvidiactl exists) makes a
# CUDA that does not load a failure; without a GPU the checks are reported as
# SKIP and the script exits 0, so it can be dry-run anywhere.
set -u
cd "$(dirname "$0")/../.."

echo "== GPU checks: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
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

export PM_NATIVE_ADDON="$PWD/.devbin/pm_native.node"

# run_check NAME SECONDS: runs .devbin/NAME.mjs under a time limit, prints its rc.
run_check() {
  echo
  echo "== $1"
  timeout "$2" "$node_bin" ".devbin/$1.mjs"
  local rc=$?
  if [ "$rc" -eq 124 ]; then
    echo "FAIL $1 timed out after $2 s"
    echo "0 passed, 1 failed"
  fi
  echo "== $1: exit $rc"
  return "$rc"
}

run_check gpu-checks 120
addon_rc=$?
agent_rc=0
if [ -f .devbin/agent-gpu-check.mjs ]; then
  run_check agent-gpu-check 100
  agent_rc=$?
fi

echo
echo "== summary: gpu-checks exit $addon_rc, agent-gpu-check exit $agent_rc"
if [ "$addon_rc" -ne 0 ] || [ "$agent_rc" -ne 0 ]; then
  exit 1
fi
exit 0
