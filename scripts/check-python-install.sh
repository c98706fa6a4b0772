#!/usr/bin/env bash
# Install the Python package the way users do, offline, with Debian's tools
# (pip install --no-build-isolation . into a fresh virtual environment that
# sees the system's numpy), and run a level-3 worker from the installed copy.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(mktemp -d /tmp/strata-venv.XXXXXX)
trap 'rm -rf "$venv"' EXIT
/usr/bin/python3 -m venv --system-site-packages "$venv"
"$venv/bin/python" -m pip install -q --no-build-isolation --no-index --no-deps . 2>&1 | grep -v "^\s*$" || true
cd "$venv"   # away from the source tree: the installed package, not python/strata
timeout 60 "$venv/bin/python" - <<'PY'
import numpy as np
import strata
from strata import Worker, TaskArgs, TensorArgType
assert "site-packages" in strata.__file__, strata.__file__
def inc(args):
    args.tensor(0)[:] += 1
with Worker(level=3, num_sub_workers=1) as w:
    h = w.register(inc)
    w.init()
    x = w.host_zeros(4, "int32")
    def orch(o, a, c):
        ta = TaskArgs(); ta.add_tensor(x, TensorArgType.INOUT); o.submit_sub(h, ta)
    for _ in range(3):
        w.run(orch)
    assert (x == 3).all(), x
print("check-python-install: the installed package runs a level-3 worker:", strata.__version__)
PY
