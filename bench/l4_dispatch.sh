#!/usr/bin/env bash
# bench/l4_dispatch.c's remote part: two ranks, over shared memory and then over
# TCP loopback. Usage: bench/l4_dispatch.sh [build dir] [l4_dispatch options]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
exe="$build/bench/l4_dispatch_mpi"
[ -x "$exe" ] || { echo "l4_dispatch.sh: build $exe first (it needs Open MPI: scripts/deps.sh bench)" >&2; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
scratch=$(mktemp -d); trap 'rm -rf "$scratch"' EXIT   # Open MPI's files: not in /dev/shm
export OMPI_MCA_btl_vader_backing_directory=$scratch OMPI_MCA_orte_tmpdir_base=$scratch
for btl in self,vader self,tcp; do
  echo "== btl $btl =="
  timeout 600 mpirun -n 2 --oversubscribe --mca btl "$btl" "$exe" "$@"
done
