"""Run under mpiexec with three ranks (tests/python/test_levels.py starts it
through tests/mpi/run.sh): rank 0 holds a level-4 Worker over a local level-3
Worker and the level-3 Workers ranks 1 and 2 serve; a Python orchestration
function, found by its name on every rank, runs a chip task on each; remote
memory is allocated and copied from Python. Prints PASS python_mpi on rank 0."""

import sys

import numpy as np

import strata
from strata import CallConfig, TaskArgs, TensorArgType, Worker

CHIPS = {}   # the chip callable's handle on each level-3 Worker of this process


def l3_orch(orch, args, config):
    orch.submit_next_level(CHIPS[orch.worker], args, config, worker=0)


def level3(chip):
    w = Worker(level=3, device_ids=[0], num_sub_workers=1, close_grace_s=0.5)
    CHIPS[w] = w.register(chip)
    return w


def main(chip_so):
    rank, size = strata.mpi_init()
    assert size == 3
    chip = strata.ChipCallable.from_symbol(chip_so, "test_add")
    top = Worker(level=4, close_grace_s=0.5)
    h = top.register(l3_orch)
    if rank != 0:
        strata.mpi_serve(top, level3(chip))
        strata.mpi_finalize()
        return
    assert top.add_worker(level3(chip)) == 0
    assert top.add_rank(1) == 1 and top.add_rank(2) == 2
    top.init()
    x = top.host_zeros((8,), "int64")
    bufs = {k: top.malloc(64, worker=k) for k in (1, 2)}
    for b in bufs.values():
        top.copy_to(b, np.arange(8, dtype=np.int64))

    def l4_orch(orch, args, config):
        for k in range(3):
            ta = TaskArgs()
            ta.add_tensor(x if k == 0 else bufs[k].tensor((8,), "int64"), TensorArgType.INOUT)
            ta.add_scalar(k + 1)
            orch.submit_next_level(h, ta, CallConfig(), worker=k)

    for _ in range(10):
        top.run(l4_orch)
    assert (x == 10).all(), x
    for k, b in bufs.items():
        out = np.zeros(8, dtype=np.int64)
        top.copy_from(out, b)
        assert (out == np.arange(8) + 10 * (k + 1)).all(), (k, out)
    top.close()
    strata.mpi_finalize()
    print("PASS python_mpi", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
