#!/usr/bin/env bash
# Run one case of tests/mpi/test_mpi.c (or an MPI example) under mpiexec: three
# ranks, shared memory or TCP, a hard timeout; then check that no process of it
# is left and nothing was left in /dev/shm.
# Usage: tests/mpi/run.sh <executable> <case> [btl]
set -uo pipefail
exe=$1 case=$2 btl=${3:-self,vader}
# Root needs these on these machines; three ranks on two CPUs share them.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# Open MPI's own files (its shared-memory segments, its session directory) go
# to a directory of this run, not /dev/shm: a killed job cannot leave them
# behind, and the other tests, which check /dev/shm, never see them.
scratch=$(mktemp -d)
export OMPI_MCA_btl_vader_backing_directory=$scratch OMPI_MCA_orte_tmpdir_base=$scratch
shm_before=$(ls /dev/shm | wc -l)
# The run's directory goes last on the command line (the programs ignore it):
# it tells this run's processes from another run's of the same case.
timeout -k 5 120 mpiexec -n 3 --oversubscribe --mca btl "$btl" "$exe" $case "$scratch"
rc=$?
sleep 0.2
left=$(pgrep -f -- "^$exe .*$scratch" || true)
rm -rf "$scratch"
if [ -n "$left" ]; then
  echo "run.sh: processes of $case left behind: $left"
  pkill -9 -f -- "^$exe .*$scratch"
  exit 1
fi
if [ "$(ls /dev/shm | wc -l)" -gt "$shm_before" ]; then
  echo "run.sh: entries left behind in /dev/shm: $(ls /dev/shm)"
  exit 1
fi
exit $rc
