#!/usr/bin/env bash
# The MPI floor (bench/mpi_floor.c) over shared memory and over TCP loopback,
# one after the other. Usage: bench/mpi_floor.sh [build dir] [mpi_floor options]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
exe="$build/bench/mpi_floor"
[ -x "$exe" ] || { echo "mpi_floor.sh: build $exe first (it needs Open MPI: scripts/deps.sh bench)" >&2; exit 2; }
# Root needs these on these machines; two ranks on two CPUs may share one.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for btl in self,vader self,tcp; do
  echo "== btl $btl =="
  timeout 300 mpirun -n 2 --oversubscribe --mca btl "$btl" "$exe" "$@"
done
