#!/usr/bin/env bash
# Build Strata and run the main job: a node worker with two sim chip children and
# a SUB child serving 500 runs (examples/l3_multi_chip).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target l3_multi_chip
./build/examples/l3_multi_chip
