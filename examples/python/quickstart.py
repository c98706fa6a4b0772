import numpy as np
from strata import Worker, TaskArgs, TensorArgType, ChipCallable

# A level-3 worker: one sim chip child and one SUB child (a Python function).
worker = Worker(level=3, platform="sim", device_ids=[0], num_sub_workers=1)
vector_add = worker.register(ChipCallable.compile("examples/python/vector_add.c", "vector_add"))

def total(args):                      # runs in the SUB child, on numpy views
    args.tensor(1)[0] = args.tensor(0).sum()

reduce_sum = worker.register(total)
worker.init()

a = worker.host_empty(4096, "float32")       # shared memory: every child sees it
b = worker.host_empty(4096, "float32")
c = worker.host_zeros(4096, "float32")
s = worker.host_zeros(1, "float64")
a[:], b[:] = np.arange(4096), 1.0

def orch_fn(orch, _args, _cfg):
    add = TaskArgs()
    add.add_tensor(a, TensorArgType.INPUT)
    add.add_tensor(b, TensorArgType.INPUT)
    add.add_tensor(c, TensorArgType.OUTPUT)
    orch.submit_next_level(vector_add, add, worker=0)     # on the chip child
    red = TaskArgs()
    red.add_tensor(c, TensorArgType.INPUT)                # after the chip task, by the tags
    red.add_tensor(s, TensorArgType.OUTPUT)
    orch.submit_sub(reduce_sum, red)

for step in range(100):                                   # the same worker, run after run
    worker.run(orch_fn)
assert s[0] == np.arange(4096).sum() + 4096
print("sum of a + b:", s[0], "| tasks:", worker.stats()["tasks_completed"])
worker.close()
