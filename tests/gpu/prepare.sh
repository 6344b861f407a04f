#!/usr/bin/env bash
# Prepares .devbin/ (git-ignored) for the GPU machine, which has no Node.js and
# no network: a gzipped copy of this machine's node, the built addon and the
# check scripts bundled with esbuild (tests/gpu/gpu-checks.ts, and
# tests/gpu/agent-gpu-check.ts when present). Then carry .devbin to the device
# and run tests/gpu/run-on-device.sh there.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ ! -f native/build/Release/pm_native.node ]; then
  echo "building the addon (native/build/Release/pm_native.node is missing)"
  (cd native && npx node-gyp rebuild --nodedir=/usr)
fi

mkdir -p .devbin
node_bin="$(command -v node)"
if [ ! -f .devbin/node.gz ] || [ "$node_bin" -nt .devbin/node.gz ]; then
  gzip -9 -c "$node_bin" > .devbin/node.gz
fi
cp native/build/Release/pm_native.node .devbin/pm_native.node

# CommonJS dependencies inside an ESM bundle call require() for Node built-ins.
banner="import { createRequire as __pmCreateRequire } from 'node:module'; const require = __pmCreateRequire(import.meta.url);"
for check in gpu-checks agent-gpu-check; do
  if [ -f "tests/gpu/$check.ts" ]; then
    npx esbuild "tests/gpu/$check.ts" --bundle --platform=node --format=esm --target=node20 \
      --log-level=warning --banner:js="$banner" --outfile=".devbin/$check.mjs"
  fi
done

du -sh .devbin/* | sed 's/^/  /'
echo "prepared .devbin: carry it to the GPU machine and run: bash tests/gpu/run-on-device.sh"
