#!/usr/bin/env bash
# Build Strata and run the main job: the L2 vector-add example on the sim chip.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target l2_vector_add
./build/examples/l2_vector_add
