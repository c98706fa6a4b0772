#!/usr/bin/env bash
# Run one case of tests/mpi/test_mpi.c under mpiexec (3 ranks, shared memory or
# TCP), with a hard timeout, then check that no process of it is left.
# Usage: tests/mpi/run.sh <test_mpi executable> <case> [btl]
set -uo pipefail
exe=$1 case=$2 btl=${3:-self,vader}
# Root needs these on these machines; three ranks on two CPUs share them.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
timeout -k 5 120 mpiexec -n 3 --oversubscribe --mca btl "$btl" "$exe" "$case"
rc=$?
sleep 0.2
left=$(pgrep -f -- "^$exe $case" || true)
if [ -n "$left" ]; then
  echo "run.sh: processes of $case left behind: $left"
  pkill -9 -f -- "^$exe $case"
  exit 1
fi
exit $rc
