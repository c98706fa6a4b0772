/* The _strata extension: declarations shared by its modules.
 *
 * One module per concept, as in the library:
 *   module.c   the module, the exception classes, the embedding hooks
 *              (fork, wait, interrupt) and the GIL rules around them
 *   worker.c   Worker: create, init, register, run, close, memory, stats
 *   orch.c     the orchestration object a run passes to orch_fn, and scopes
 *   args.c     TaskArgs, Tensor, dtypes and tags, finding a host array's buffer
 *   buffers.c  HostBuffer and ChipBuffer (buffer protocol, array interface)
 *   sub.c      SUB functions: registration records, the trampoline a SUB child
 *              calls, and SubArgs, the arguments a SUB function receives
 *
 * Built against the limited API of Python 3.11 (one abi3 binary for 3.11 and
 * later), with heap types and METH_FASTCALL. The library is linked statically
 * and its strata_* symbols are exported from the extension, so chip callables
 * loaded from shared objects resolve them (module.c promotes the extension to
 * RTLD_GLOBAL at import). */
#ifndef STRATA_PYTHON_PYSTRATA_H
#define STRATA_PYTHON_PYSTRATA_H

#define Py_LIMITED_API 0x030B0000
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <strata/strata.h>

/* The module's classes and exceptions. Single-phase init: one module per
   process (the extension keeps process-wide hooks, as the library does). */
typedef struct pys_state {
    PyTypeObject *Worker, *Orch, *Scope, *TaskArgs, *Tensor, *HostBuffer, *ChipBuffer, *SubArgs, *Handle;
    PyObject *StrataError;
    PyObject *errors[16];          /* by -status; NULL for OK */
} pys_state;

extern pys_state pys;

struct pys_worker;

/* The name of o's type, for messages (the limited API has no tp_name). The
   text lives until the thread's next call. */
const char *pys_tname(PyObject *o);

/* strata._runtime.<name> (the Python side the extension calls back into:
   dtype names, numpy arrays, SUB calls), a new reference; NULL with an
   exception set. */
PyObject *pys_runtime_attr(const char *name);

/* An index argument i for a sequence of n `what`s (negative counts from the
   end): IndexError, by Python's convention, when out of range. */
int pys_index_arg(PyObject *o, uint32_t n, const char *what, uint32_t *out);

/* ---- errors (module.c) ---- */
/* Raise the exception class of status rc with message msg (NULL: the calling
   thread's strata_last_error()); returns NULL. */
PyObject *pys_raise(int rc, const char *msg);
PyObject *pys_raisef(int rc, const char *fmt, ...);

/* ---- the GIL around a run (module.c) ---- */
/* The driving thread's record while a Python run is in flight: the wait hooks
   release the GIL only on a thread that has one. */
typedef struct pys_run {
    PyThreadState *saved;       /* set between wait_begin and wait_end */
    PyObject *exc;              /* the first exception of the run (orch_fn's, or a KeyboardInterrupt) */
    bool interrupted;           /* the interrupt hook answered yes */
    _Atomic int *stop;          /* the worker's interrupt request (Worker.interrupt), or NULL */
    struct pys_run *prev_;      /* the enclosing run on this thread */
} pys_run;
/* stop: the worker's request flag, polled by the interrupt hook. */
void pys_run_enter(pys_run *r, _Atomic int *stop);
void pys_run_leave(pys_run *r);
/* Keep the pending exception as the run's (the first one wins). */
void pys_run_keep_exception(void);

/* ---- handles (worker.c) ---- */
typedef struct pys_handle {
    PyObject_HEAD
    uint32_t h;
    int kind;                   /* 0 chip, 1 sub */
    bool retired;               /* Worker.unregister */
    uint64_t worker_serial;     /* the worker that issued it (C handles are numbered per worker) */
    PyObject *target;           /* the ChipCallable or function */
} pys_handle;
/* The C handle of o, which must be a CallableHandle issued by worker w. */
int pys_handle_of(PyObject *o, const struct pys_worker *w, uint32_t *out);

/* ---- tensors and task args (args.c) ---- */
typedef struct pys_tensor {
    PyObject_HEAD
    strata_tensor t;
    PyObject *owner;            /* keeps the memory's Python owner alive */
} pys_tensor;

typedef struct pys_taskargs {
    PyObject_HEAD
    strata_tensor *tensors;
    strata_tag *tags;
    PyObject **owners;          /* one strong ref (or NULL) per tensor */
    uint64_t *scalars;
    uint32_t ntensors, nscalars, cap_tensors, cap_scalars;
    uint32_t in_use;            /* submits or level-2 runs reading it now (they may release the GIL) */
} pys_taskargs;

/* A TaskArgs the library reads during a call that may release the GIL (a
   submit waiting for room in the task window, a level-2 run): while held,
   changing it from another thread raises StateError instead of freeing the
   arrays under the library. d: +1 to hold, -1 to let go; o may be None. */
static inline void pys_taskargs_hold(PyObject *o, int d)
{
    if (o && Py_IS_TYPE(o, pys.TaskArgs))
        ((pys_taskargs *)o)->in_use += (uint32_t)d;
}

static inline strata_task_args pys_taskargs_view(const pys_taskargs *a)
{
    return (strata_task_args){a->tensors, a->tags, a->ntensors, a->scalars, a->nscalars};
}
/* Convert a Python dtype designation (DataType member or int, str, numpy
   dtype) to the C dtype; -1 with an exception set. */
int pys_dtype_from(PyObject *o);
int pys_tag_from(PyObject *o);
/* Make a tensor from obj (Tensor, or a buffer/array in memory Strata knows);
   *owner: a new reference to keep alive. 0 or -1 with an exception. */
int pys_tensor_from(PyObject *obj, strata_tensor *out, PyObject **owner);
int pys_taskargs_from(PyObject *o, strata_task_args *out);   /* None -> empty */
int pys_call_config_from(PyObject *o, strata_call_config *out, bool *given);

/* ---- known host memory (args.c): the shared heaps of live workers ---- */
int pys_known_add(uint64_t base, uint64_t nbytes, PyObject *owner);  /* owner: borrowed */
void pys_known_remove(uint64_t base, const PyObject *owner);   /* the entry of that owner */
/* The known buffer holding [p, p+n), or false. */
bool pys_known_find(uint64_t p, uint64_t n, uint64_t *base, uint64_t *nbytes, PyObject **owner);

/* ---- buffers (buffers.c) ---- */
typedef struct pys_hostbuf {
    PyObject_HEAD
    void *p;
    uint64_t nbytes;
    PyObject *worker;           /* the Worker, while the memory is its shared heap's. Borrowed: the
                                   worker detaches its buffers when it closes or dies, so arrays in
                                   its heap (numpy does not take part in cycle collection) never keep
                                   a worker alive: w.x = w.host_zeros(...) is no leak */
    Py_ssize_t exports;         /* buffer-protocol views alive (numpy arrays over it) */
    struct pys_hostbuf *prev, *next;   /* the worker's live host buffers */
    void *detached;             /* between detach and remap: the copy of its pages, or NULL */
    bool remapped;              /* after close: its pages are private memory of ours, on the remapped list */
} pys_hostbuf;
/* At close: every host buffer of the worker leaves the shared heap. One still
   viewed keeps its contents at the same address, in private memory, so arrays
   over it stay valid (they no longer reach the children): detach before the
   library's close (returns a list of those, copied out), remap after it. */
PyObject *pys_hostbufs_detach(struct pys_worker *w);
void pys_hostbufs_remap(PyObject *kept);
/* In a process other than the worker's creator (a SUB child, a fork): the
   buffers only leave the worker, their memory untouched. */
void pys_hostbufs_forget(struct pys_worker *w);

typedef struct pys_chipbuf {
    PyObject_HEAD
    strata_buffer b;
    PyObject *worker;
} pys_chipbuf;

PyObject *pys_hostbuf_new(PyObject *worker, void *p, uint64_t nbytes);
PyObject *pys_chipbuf_new(PyObject *worker, strata_buffer b);
/* The tensor(shape, dtype, strides=None, offset=0) method both buffers share. */
PyObject *pys_make_view(PyObject *owner, uint64_t base, uint64_t nbytes, PyObject *const *args, Py_ssize_t nargs,
                        PyObject *kwnames);

/* ---- the worker (worker.c) ---- */
typedef struct pys_worker {
    PyObject_HEAD
    struct pys_hostbuf *hostbufs;   /* live host buffers (a list through prev/next) */
    strata_worker *w;
    int level;
    uint32_t ndevices, nsubs;
    PyObject *handles;          /* dict: int handle -> Handle */
    unsigned long busy_thread;  /* the thread in a call of this worker that released the GIL (a run
                                   included), or 0: other threads are refused meanwhile */
    bool in_run;                /* a level-3 or level-2 run is in flight (on busy_thread) */
    _Atomic int stop_requested; /* Worker.interrupt(): stop the run in flight (any thread) */
    long creator_pid;
    uint64_t serial;            /* unique in the process: which handles are this worker's */
    uint64_t (*adopted)[2];     /* shared mappings adopted at init (base, nbytes), in the known registry */
    uint32_t nadopted;
    PyObject *weakreflist;
    PyObject *dict;
    PyObject *added;            /* list of the Workers added one level down (add_worker), or NULL */
    PyObject *given_to;         /* the Worker this one was added to, kept alive as long as this one, or NULL */
    bool given;                 /* added to another Worker, which owns its library worker: set once, never
                                   cleared (not even by the collector's clear, which drops given_to) */
    PyObject *serving;          /* on an MPI rank in mpi_serve: the Worker served for this one, or NULL */
} pys_worker;

/* Around a library call made with the GIL released: the worker is busy on
   this thread until it returns, and every call from another thread is refused
   meanwhile (close would otherwise destroy the worker under it). Nests on one
   thread (orch_fn calling malloc inside a run). */
#define PYS_RELEASE_GIL(w)                                          \
    {                                                               \
        unsigned long pys_prev_busy_ = (w)->busy_thread;            \
        (w)->busy_thread = PyThread_get_thread_ident();             \
        Py_BEGIN_ALLOW_THREADS
#define PYS_ACQUIRE_GIL(w)                                          \
        Py_END_ALLOW_THREADS                                        \
        (w)->busy_thread = pys_prev_busy_;                          \
    }

/* ---- the orchestration object (orch.c) ---- */
PyObject *pys_orch_new(pys_worker *w, strata_orch *o, PyObject *keep);
void pys_orch_invalidate(PyObject *orch);

/* ---- SUB functions (sub.c) ---- */
/* The record a SUB handle's ctx points to: before init, in the process's
   memory (every child inherits it); after init, in the shared heap, holding
   the function serialised (children started before it load it). */
int pys_sub_register(pys_worker *w, PyObject *fn, PyObject *blob, uint32_t *out);
/* orch.c: an orchestration function that the Workers added to w run (L4+), in
   their own processes. */
int pys_child_orch_register(pys_worker *w, PyObject *fn, const char *name, uint32_t *out);
/* mpi.c: remote Workers (where the build had Open MPI) */
extern PyMethodDef pys_mpi_methods[];
int pys_add_rank(pys_worker *w, int rank, int *id);
int pys_sub_trampoline(const strata_task_args *args, void *ctx);

/* ---- type specs ---- */
extern PyType_Spec pys_worker_spec, pys_orch_spec, pys_scope_spec, pys_taskargs_spec, pys_tensor_spec,
    pys_hostbuf_spec, pys_chipbuf_spec, pys_subargs_spec, pys_handle_spec;

/* Keyword argument helper for METH_FASTCALL|METH_KEYWORDS: fills out[i] (borrowed)
   for names[i] from positional then keyword args; -1 with TypeError. */
int pys_parse(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
              const char *const *names, int nrequired, int npositional, PyObject **out);

int pys_u64(PyObject *o, const char *what, uint64_t *out);

#endif
