#!/usr/bin/env bash
# Build Strata and run the main job: the serving demo (examples/serving). A small
# transformer on a level-3 worker with two sim chips and a Python SUB worker:
# prefill a prompt, then decode token by token, one run per step, every step's
# logits checked against the numpy reference; then the same stream again with a
# chip child SIGKILLed mid-stream, recovered, and the same tokens.
# Extra arguments go to serve.py (examples/serving/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target strata_python serving_kernels
export PYTHONPATH="$PWD/build/python"
python=/usr/bin/python3   # Debian's: scripts/deps.sh installed numpy for it
if (($#)); then
  exec "$python" examples/serving/serve.py "$@"
fi
"$python" examples/serving/serve.py --tokens 200 --check
"$python" examples/serving/serve.py --tokens 200 --check --kill-chip-at 100
