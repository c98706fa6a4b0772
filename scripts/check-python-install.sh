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
src=$PWD
cd "$venv"   # away from the source tree: the installed package, not python/strata
# Every public symbol of the library is exported by the installed extension
# (chip callables resolve theirs against it).
so=$(ls "$venv"/lib/python3*/site-packages/strata/_strata*.so)
want=$(sed -n 's/^ *\(strata_[a-z0-9_]*\);$/\1/p' "$src/cmake/strata.map" | sort)
have=$(nm -D --defined-only "$so" | awk '{print $3}' | grep '^strata_' | sort)
missing=$(comm -23 <(echo "$want") <(echo "$have"))
if [ -n "$missing" ]; then
  echo "check-python-install: the installed extension does not export: $missing" >&2
  exit 1
fi
timeout 120 "$venv/bin/python" - "$src" <<'PY'
import os
import sys
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
# A chip callable compiled against the installed headers, in a chip child.
os.chdir(sys.argv[1])
exec(open("examples/python/quickstart.py").read())
print("check-python-install: the installed package runs a level-3 worker and the quick start:", strata.__version__)
PY
