/* Worker: a Strata worker driven from Python. The pure-Python subclass
 * (strata/worker.py) reads the keywords; this type holds the C worker and
 * makes each call, with the GIL rules of module.c. */
#include "pystrata.h"

#include <structmember.h>
#include <dlfcn.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

/* ---- handles ---- */

static int handle_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(((pys_handle *)self)->target);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int handle_clear(PyObject *self)
{
    Py_CLEAR(((pys_handle *)self)->target);
    return 0;
}

static void handle_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Py_XDECREF(((pys_handle *)self)->target);
    ((freefunc)PyType_GetSlot(tp, Py_tp_free))(self);
    Py_DECREF(tp);
}

static PyObject *handle_int(PyObject *self)
{
    return PyLong_FromUnsignedLong(((pys_handle *)self)->h);
}

static Py_hash_t handle_hash(PyObject *self)
{
    const pys_handle *h = (const pys_handle *)self;
    Py_hash_t v = (Py_hash_t)(h->worker_serial * 1000003u + h->h);
    return v == -1 ? -2 : v;
}

static PyObject *handle_richcompare(PyObject *a, PyObject *b, int op)
{
    if (!PyObject_TypeCheck(b, pys.Handle) || (op != Py_EQ && op != Py_NE))
        Py_RETURN_NOTIMPLEMENTED;
    const pys_handle *x = (const pys_handle *)a, *y = (const pys_handle *)b;
    bool eq = x->h == y->h && x->worker_serial == y->worker_serial;
    return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

static PyObject *handle_repr(PyObject *self)
{
    pys_handle *h = (pys_handle *)self;
    return PyUnicode_FromFormat("<strata.CallableHandle %u (%s%s)>", h->h,
                                h->kind == 0 ? "chip" : h->kind == 2 ? "orchestration" : "SUB",
                                h->retired ? ", retired" : "");
}

static PyObject *handle_get_target(PyObject *self, void *c)
{
    (void)c;
    PyObject *t = ((pys_handle *)self)->target;
    return Py_NewRef(t ? t : Py_None);
}

static PyGetSetDef handle_getset[] = {
    {"target", handle_get_target, NULL, "What was registered (a ChipCallable or a function).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot handle_slots[] = {
    {Py_tp_dealloc, handle_dealloc},
    {Py_tp_traverse, handle_traverse},
    {Py_tp_clear, handle_clear},
    {Py_nb_int, handle_int},
    {Py_nb_index, handle_int},
    {Py_tp_hash, handle_hash},
    {Py_tp_richcompare, handle_richcompare},
    {Py_tp_repr, handle_repr},
    {Py_tp_getset, handle_getset},
    {Py_tp_doc, "A registered callable, from Worker.register; int(h) is the C handle."},
    {0, NULL},
};
PyType_Spec pys_handle_spec = {"strata.CallableHandle", sizeof(pys_handle), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
                                handle_slots};

int pys_handle_of(PyObject *o, const pys_worker *w, uint32_t *out)
{
    if (!Py_IS_TYPE(o, pys.Handle)) {
        PyErr_Format(PyExc_TypeError,
                     "expected a CallableHandle (the value Worker.register returned), not %s", pys_tname(o));
        return -1;
    }
    pys_handle *h = (pys_handle *)o;
    if (h->worker_serial != w->serial) {
        pys_raisef(STRATA_ENOENT, "callable handle %u belongs to another worker; register the callable with this one",
                   h->h);
        return -1;
    }
    if (h->retired) {
        pys_raisef(STRATA_ENOENT, "callable handle %u was unregistered", h->h);
        return -1;
    }
    *out = h->h;
    return 0;
}

static PyObject *make_handle(pys_worker *w, uint32_t h, int kind, PyObject *target)
{
    pys_handle *o = PyObject_GC_New(pys_handle, pys.Handle);
    if (!o)
        return NULL;
    o->h = h;
    o->kind = kind;
    o->retired = false;
    o->worker_serial = w->serial;
    o->target = Py_NewRef(target);
    PyObject_GC_Track(o);
    PyObject *key = PyLong_FromUnsignedLong(h);
    if (!key || PyDict_SetItem(w->handles, key, (PyObject *)o) < 0) {
        Py_XDECREF(key);
        Py_DECREF(o);
        return NULL;
    }
    Py_DECREF(key);
    return (PyObject *)o;
}

/* ---- who may call ---- */

/* Every call but close checks that it comes from the process that created the
   worker (the library refuses too, but says less about Python's side) and that
   no other thread is in a run. */
static int check_caller(pys_worker *w, const char *what)
{
    if (!w->w) {
        pys_raisef(STRATA_ESTATE, "Worker.%s: the worker is closed", what);
        return -1;
    }
    if ((long)getpid() != w->creator_pid) {
        pys_raisef(STRATA_ESTATE,
                   "Worker.%s: this worker belongs to process %ld; a worker is used only in the process that created "
                   "it (this is %ld)", what, w->creator_pid, (long)getpid());
        return -1;
    }
    unsigned long me = PyThread_get_thread_ident();
    if (w->busy_thread && w->busy_thread != me) {
        pys_raisef(STRATA_ESTATE,
                   "Worker.%s: thread %lu is in %s of this worker; one thread drives a worker at a time (wait for "
                   "that call to return)", what, w->busy_thread, w->in_run ? "a run" : "a call");
        return -1;
    }
    return 0;
}

/* ---- create, init, close ---- */

static int opt_u32(PyObject *o, const char *name, uint32_t *out)
{
    if (o == Py_None)
        return 0;
    uint64_t v;
    if (pys_u64(o, name, &v) < 0)
        return -1;
    if (v > UINT32_MAX) {
        pys_raisef(STRATA_EINVAL, "%s = %llu does not fit in 32 bits", name, (unsigned long long)v);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static int opt_u64(PyObject *o, const char *name, uint64_t *out)
{
    return o == Py_None ? 0 : pys_u64(o, name, out);
}

/* _create(level, platform, runtime, device_id, device_ids, num_sub_workers,
           on_child_death, task_timeout_ms, init_timeout_ms, close_grace_ms,
           shared_heap_bytes, device_memory_bytes, aic_cores, aiv_cores,
           node_task_window): None keeps the library's default. */
static PyObject *worker_create(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    pys_worker *w = (pys_worker *)self;
    if (nargs != 15) {
        PyErr_SetString(PyExc_TypeError, "_create takes 15 arguments");
        return NULL;
    }
    if (w->w)
        return pys_raise(STRATA_ESTATE, "this Worker already has a worker");
    long level = PyLong_AsLong(args[0]);
    if (level == -1 && PyErr_Occurred())
        return NULL;
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, (int)level);
    cfg.platform = PyUnicode_AsUTF8AndSize(args[1], NULL);
    cfg.runtime = PyUnicode_AsUTF8AndSize(args[2], NULL);
    if (!cfg.platform || !cfg.runtime)
        return NULL;
    if (args[3] != Py_None) {
        long id = PyLong_AsLong(args[3]);
        if (id == -1 && PyErr_Occurred())
            return NULL;
        cfg.device_id = (int)id;
    }
    int ids[64];
    PyObject *seq = PySequence_Tuple(args[4]);
    if (!seq)
        return NULL;
    Py_ssize_t n = PyTuple_Size(seq);
    if (n > 64) {
        Py_DECREF(seq);
        return pys_raisef(STRATA_EINVAL, "device_ids has %zd entries; at most 64 chips per worker", n);
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        long v = PyLong_AsLong(PyTuple_GetItem(seq, i));
        if (v == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return NULL;
        }
        ids[i] = (int)v;
    }
    Py_DECREF(seq);
    cfg.device_ids = n ? ids : NULL;
    cfg.ndevices = (uint32_t)n;
    uint32_t policy = cfg.on_child_death;
    if (opt_u32(args[5], "num_sub_workers", &cfg.num_sub_workers) < 0 ||
        opt_u32(args[6], "on_child_death", &policy) < 0 ||
        opt_u32(args[7], "task_timeout_ms", &cfg.task_timeout_ms) < 0 ||
        opt_u32(args[8], "init_timeout_ms", &cfg.init_timeout_ms) < 0 ||
        opt_u32(args[9], "close_grace_ms", &cfg.close_grace_ms) < 0 ||
        opt_u64(args[10], "shared_heap_bytes", &cfg.shared_heap_bytes) < 0 ||
        opt_u64(args[11], "device_memory_bytes", &cfg.device_memory_bytes) < 0 ||
        opt_u32(args[12], "aic_cores", &cfg.aic_cores) < 0 || opt_u32(args[13], "aiv_cores", &cfg.aiv_cores) < 0 ||
        opt_u32(args[14], "node_task_window", &cfg.node_task_window) < 0)
        return NULL;
    cfg.on_child_death = (strata_death_policy)policy;
    strata_worker *cw;
    int rc = strata_worker_create(&cfg, &cw);
    if (rc != STRATA_OK)
        return pys_raise(rc, NULL);
    w->w = cw;
    w->level = (int)level;
    w->ndevices = cfg.ndevices;
    w->nsubs = cfg.num_sub_workers;
    w->creator_pid = (long)getpid();
    Py_RETURN_NONE;
}

static PyObject *worker_init(PyObject *self, PyObject *unused)
{
    (void)unused;
    pys_worker *w = (pys_worker *)self;
    if (check_caller(w, "init") < 0)
        return NULL;
    int rc;
    /* The spawner is forked in here: the fork hooks take the GIL around it. */
    PYS_RELEASE_GIL(w)
    rc = strata_worker_init(w->w);
    PYS_ACQUIRE_GIL(w)
    if (rc != STRATA_OK)
        return pys_raise(rc, NULL);
    Py_RETURN_NONE;
}

static void forget_adopted(pys_worker *w)
{
    for (uint32_t i = 0; i < w->nadopted; i++)
        pys_known_remove(w->adopted[i][0], (PyObject *)w);
    PyMem_Free(w->adopted);
    w->adopted = NULL;
    w->nadopted = 0;
}

/* _adopt(address, nbytes) -> bool: let tasks name a shared mapping the
   application made before init (strata_worker_host_adopt); False when the
   library refuses it (not shared, overlapping: the message is dropped, this is
   a best effort over /proc/self/maps at init). */
static PyObject *worker_adopt(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    pys_worker *w = (pys_worker *)self;
    uint64_t addr, n;
    if (nargs != 2 || pys_u64(args[0], "address", &addr) < 0 || pys_u64(args[1], "nbytes", &n) < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "_adopt(address, nbytes)");
        return NULL;
    }
    if (check_caller(w, "init") < 0)
        return NULL;
    if (strata_worker_host_adopt(w->w, (void *)(uintptr_t)addr, n) != STRATA_OK)
        Py_RETURN_FALSE;
    uint64_t (*grown)[2] = PyMem_Realloc(w->adopted, (w->nadopted + 1) * sizeof *grown);
    if (!grown)
        return PyErr_NoMemory();
    w->adopted = grown;
    if (pys_known_add(addr, n, self) < 0)
        return NULL;
    w->adopted[w->nadopted][0] = addr;
    w->adopted[w->nadopted][1] = n;
    w->nadopted++;
    Py_RETURN_TRUE;
}

static void close_now(pys_worker *w)
{
    if (!w->w)
        return;
    if (w->given) {
        /* added to another Worker, which closes and frees the library worker */
        pys_hostbufs_forget(w);
        w->w = NULL;
        return;
    }
    forget_adopted(w);
    strata_worker *cw = w->w;
    if ((long)getpid() != w->creator_pid) {
        /* A copy in another process (a SUB child, a fork): the library
           releases only that process's copies and touches nothing shared; the
           host buffers stay as they are (a SUB child still runs on the heap). */
        w->w = NULL;
        pys_hostbufs_forget(w);
        (void)strata_worker_close(cw);
        strata_worker_destroy(cw);
        return;
    }
    PyObject *kept = pys_hostbufs_detach(w);
    PYS_RELEASE_GIL(w)
    (void)strata_worker_close(cw);
    strata_worker_destroy(cw);
    PYS_ACQUIRE_GIL(w)
    w->w = NULL;
    /* the Workers added to it were destroyed with it */
    for (Py_ssize_t i = 0; w->added && i < PyList_Size(w->added); i++) {
        pys_worker *c = (pys_worker *)PyList_GetItem(w->added, i);
        pys_hostbufs_forget(c);
        c->w = NULL;
    }
    pys_hostbufs_remap(kept);
    Py_XDECREF(kept);
}

static PyObject *worker_close(PyObject *self, PyObject *unused)
{
    (void)unused;
    pys_worker *w = (pys_worker *)self;
    if (w->given && w->w)
        return pys_raise(STRATA_ESTATE, "Worker.close: this worker was added to a higher-level worker, which owns it "
                                        "and closes it with itself");
    unsigned long me = PyThread_get_thread_ident();
    if (w->busy_thread && w->busy_thread != me)
        return pys_raisef(STRATA_ESTATE, "Worker.close: thread %lu is in %s of this worker; close it from that "
                                         "thread, or after the call returns", w->busy_thread,
                                         w->in_run ? "a run" : "a call");
    if (w->in_run)
        return pys_raise(STRATA_ESTATE, "Worker.close: called from inside a run of this worker (orch_fn); close it "
                                        "after run() returns");
    close_now(w);
    Py_RETURN_NONE;
}

static PyObject *worker_get_state(PyObject *self, void *c)
{
    (void)c;
    pys_worker *w = (pys_worker *)self;
    return PyLong_FromLong(w->w ? (long)strata_worker_state(w->w) : (long)STRATA_STATE_CLOSED);
}

static PyObject *worker_get_level(PyObject *self, void *c)
{
    (void)c;
    return PyLong_FromLong(((pys_worker *)self)->level);
}

/* ---- registration ---- */

/* _register_chip(so_path, symbol, target): a chip callable from a shared
   object. At L3 every process loads it (strata_worker_register_chip_symbol);
   at L2 this process does. */
static PyObject *worker_register_chip(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    pys_worker *w = (pys_worker *)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "_register_chip(so_path, symbol, target)");
        return NULL;
    }
    if (check_caller(w, "register") < 0)
        return NULL;
    const char *so = PyUnicode_AsUTF8AndSize(args[0], NULL);
    const char *sym = so ? PyUnicode_AsUTF8AndSize(args[1], NULL) : NULL;
    if (!sym)
        return NULL;
    strata_handle h = STRATA_HANDLE_INVALID;
    int rc;
    if (w->level >= 3) {
        PYS_RELEASE_GIL(w)
        rc = strata_worker_register_chip_symbol(w->w, so, sym, &h);
        PYS_ACQUIRE_GIL(w)
    } else {
        void *lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
        if (!lib)
            return pys_raisef(STRATA_ENOENT, "cannot load the chip callable's object %s: %s", so, dlerror());
        const strata_chip_callable *c = dlsym(lib, sym);
        if (!c) {
            dlclose(lib);
            return pys_raisef(STRATA_ENOENT, "%s has no symbol '%s' (a const strata_chip_callable)", so, sym);
        }
        rc = strata_worker_register_chip(w->w, c, &h);
    }
    if (rc != STRATA_OK && h == STRATA_HANDLE_INVALID)
        return pys_raise(rc, NULL);
    PyObject *handle = make_handle(w, h, 0, args[2]);
    if (rc != STRATA_OK) {   /* consumed, but some child could not take it: say so */
        Py_XDECREF(handle);
        return pys_raise(rc, NULL);
    }
    return handle;
}

/* _register_sub(fn, blob): blob is the function serialised (bytes) when the
   children already run, else None. */
static PyObject *worker_register_sub(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    pys_worker *w = (pys_worker *)self;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_register_sub(fn, blob)");
        return NULL;
    }
    if (check_caller(w, "register") < 0)
        return NULL;
    uint32_t h;
    if (pys_sub_register(w, args[0], args[1], &h) < 0)
        return NULL;
    return make_handle(w, h, 1, args[0]);
}

/* _register_orch(fn, name): an orchestration function the added Workers run
   (L4+), under name (str; remote Workers find it by it) or None. */
static PyObject *worker_register_orch(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    pys_worker *w = (pys_worker *)self;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_register_orch(fn, name)");
        return NULL;
    }
    if (check_caller(w, "register") < 0)
        return NULL;
    const char *name = args[1] == Py_None ? NULL : PyUnicode_AsUTF8AndSize(args[1], NULL);
    if (args[1] != Py_None && !name)
        return NULL;
    uint32_t h;
    if (pys_child_orch_register(w, args[0], name, &h) < 0)
        return NULL;
    return make_handle(w, h, 2, args[0]);
}

/* _add_rank(rank) -> the worker id of the Worker MPI rank `rank` serves. */
static PyObject *worker_add_rank(PyObject *self, PyObject *arg)
{
    pys_worker *w = (pys_worker *)self;
    if (check_caller(w, "add_rank") < 0)
        return NULL;
    long rank = PyLong_AsLong(arg);
    if (rank == -1 && PyErr_Occurred())
        return NULL;
    int id = -1;
    if (pys_add_rank(w, (int)rank, &id) < 0)
        return NULL;
    return PyLong_FromLong(id);
}

/* _add_worker(child) -> its worker id (L4+, before init). */
static PyObject *worker_add_worker(PyObject *self, PyObject *child)
{
    pys_worker *w = (pys_worker *)self;
    if (check_caller(w, "add_worker") < 0)
        return NULL;
    if (!PyObject_TypeCheck(child, pys.Worker))
        return PyErr_Format(PyExc_TypeError, "add_worker() takes a Worker, not %s", pys_tname(child));
    pys_worker *c = (pys_worker *)child;
    if (!c->w)
        return pys_raise(STRATA_ESTATE, "Worker.add_worker: the child worker is closed");
    if (!w->added && !(w->added = PyList_New(0)))
        return NULL;
    int id = -1;
    int rc = strata_worker_add_worker(w->w, c->w, &id);
    if (rc != STRATA_OK)
        return pys_raise(rc, NULL);
    c->given = true;   /* w destroys its library worker from now on, whatever happens below */
    if (PyList_Append(w->added, child) < 0)   /* it lives as long as w: its processes run it */
        return NULL;
    PyObject *old = c->given_to;
    c->given_to = Py_NewRef(self);   /* and w as long as it: w owns its library worker */
    Py_XDECREF(old);
    return PyLong_FromLong(id);
}

static PyObject *worker_unregister(PyObject *self, PyObject *arg)
{
    pys_worker *w = (pys_worker *)self;
    uint32_t h;
    if (pys_handle_of(arg, w, &h) < 0)
        return NULL;
    PyObject *key = PyLong_FromUnsignedLong(h);
    if (!key)
        return NULL;
    PyObject *mine = PyDict_GetItemWithError(w->handles, key);   /* borrowed */
    Py_DECREF(key);
    if (mine != arg)
        return PyErr_Occurred() ? NULL : pys_raisef(STRATA_ENOENT, "handle %u is not one of this worker's", h);
    ((pys_handle *)arg)->retired = true;
    Py_RETURN_NONE;
}

/* ---- runs ---- */

typedef struct py_orch_ctx {
    pys_worker *w;
    PyObject *fn, *args, *cfg;
    PyObject *keep;   /* the TaskArgs submitted, alive until the run returns */
} py_orch_ctx;

/* Strata calls this on the thread in run(), which holds the GIL (run keeps it;
   the wait hooks give it up only while Strata sleeps). */
static int orch_trampoline(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    py_orch_ctx *c = ctx;
    PyObject *orch = pys_orch_new(c->w, o, c->keep);
    if (!orch) {
        pys_run_keep_exception();
        return STRATA_ETASK;
    }
    PyObject *r = PyObject_CallFunctionObjArgs(c->fn, orch, c->args, c->cfg, NULL);
    pys_orch_invalidate(orch);
    Py_DECREF(orch);
    if (r) {
        Py_DECREF(r);
        return STRATA_OK;
    }
    bool interrupt = PyErr_ExceptionMatches(PyExc_KeyboardInterrupt);
    pys_run_keep_exception();
    return interrupt ? STRATA_EINTR : STRATA_ETASK;
}

static PyObject *finish_run(pys_run *run, int rc)
{
    if (run->exc) {
        PyObject *e = run->exc;
        if (rc != STRATA_OK && rc != STRATA_ECANCELED &&
            PyObject_IsInstance(e, pys.errors[-STRATA_ECANCELED]) == 1) {
            /* A submit refused because the run had already failed (a child
               died meanwhile), and orch_fn let it propagate: raise the run's
               first failure, which is what the caller must act on, with the
               refusal as its context. */
            pys_raise(rc, NULL);
            PyObject *type, *value, *tb;
            PyErr_Fetch(&type, &value, &tb);
            PyErr_NormalizeException(&type, &value, &tb);
            if (value)
                PyException_SetContext(value, e);   /* steals e */
            else
                Py_DECREF(e);
            PyErr_Restore(type, value, tb);
            return NULL;
        }
        /* orch_fn's exception, or the KeyboardInterrupt that stopped the run:
           raised as it was, once every started task has settled. */
        PyErr_SetObject((PyObject *)Py_TYPE(e), e);
        Py_DECREF(e);
        return NULL;
    }
    if (rc != STRATA_OK)
        return pys_raise(rc, NULL);
    Py_RETURN_NONE;
}

/* run(orch_fn, args=None, config=None) at L3; run(handle, args=None,
   config=None) at L2. */
static PyObject *worker_run(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    pys_worker *w = (pys_worker *)self;
    PyObject *a[3] = {NULL, NULL, NULL};
    if (!kwnames && nargs >= 1 && nargs <= 3) {
        for (Py_ssize_t i = 0; i < nargs; i++)
            a[i] = args[i];
    } else {
        static const char *const names[] = {"orch_fn", "args", "config", NULL};
        if (pys_parse("run", args, nargs, kwnames, names, 1, 3, a) < 0)
            return NULL;
    }
    if (check_caller(w, "run") < 0)
        return NULL;
    if (w->in_run)
        return pys_raise(STRATA_ESTATE, "Worker.run: called from inside a run of this worker (orch_fn); submit tasks "
                                        "with the orchestration object instead");
    PyObject *py_args = a[1] ? a[1] : Py_None, *py_cfg = a[2] ? a[2] : Py_None;
    strata_task_args targs;
    strata_call_config cfg;
    bool has_cfg;
    if (pys_taskargs_from(py_args, &targs) < 0 || pys_call_config_from(py_cfg, &cfg, &has_cfg) < 0)
        return NULL;
    int rc;
    if (w->level == 2) {
        uint32_t h;
        if (pys_handle_of(a[0], w, &h) < 0)
            return NULL;
        w->in_run = true;
        Py_INCREF(py_args);   /* its tensors' memory stays alive through the run */
        pys_taskargs_hold(py_args, 1);
        PYS_RELEASE_GIL(w)
        rc = strata_worker_run_chip(w->w, h, &targs, has_cfg ? &cfg : NULL);
        PYS_ACQUIRE_GIL(w)
        pys_taskargs_hold(py_args, -1);
        Py_DECREF(py_args);
        w->in_run = false;
        if (rc != STRATA_OK)
            return pys_raise(rc, NULL);
        Py_RETURN_NONE;
    }
    if (!PyCallable_Check(a[0]))
        return PyErr_Format(PyExc_TypeError, "run() takes an orchestration function orch_fn(orch, args, config), "
                                             "not %s", pys_tname(a[0]));
    py_orch_ctx ctx = {w, a[0], py_args, py_cfg, PyList_New(0)};
    if (!ctx.keep)
        return NULL;
    pys_run run;
    atomic_store(&w->stop_requested, 0);   /* a request made between runs is for no run */
    pys_run_enter(&run, &w->stop_requested);
    w->busy_thread = PyThread_get_thread_ident();   /* the run keeps the GIL but for its sleeps */
    w->in_run = true;
    Py_INCREF(self);   /* a run keeps its worker alive, even if orch_fn drops the last reference */
    rc = strata_worker_run(w->w, orch_trampoline, &ctx, &targs, has_cfg ? &cfg : NULL);
    w->in_run = false;
    w->busy_thread = 0;
    pys_run_leave(&run);
    PyObject *r = finish_run(&run, rc);
    Py_DECREF(ctx.keep);
    Py_DECREF(self);
    return r;
}

/* ---- memory ---- */

static PyObject *worker_malloc(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    pys_worker *w = (pys_worker *)self;
    static const char *const names[] = {"nbytes", "worker", NULL};
    PyObject *a[2];
    if (pys_parse("malloc", args, nargs, kwnames, names, 1, 2, a) < 0 || check_caller(w, "malloc") < 0)
        return NULL;
    uint64_t n, wid = 0;
    if (pys_u64(a[0], "nbytes", &n) < 0 || (a[1] && pys_u64(a[1], "worker", &wid) < 0))
        return NULL;
    strata_buffer b;
    int rc;
    PYS_RELEASE_GIL(w)
    rc = strata_worker_malloc(w->w, (int)wid, n, &b);
    PYS_ACQUIRE_GIL(w)
    if (rc != STRATA_OK)
        return pys_raise(rc, NULL);
    return pys_chipbuf_new(self, b);
}

static int chipbuf_arg(PyObject *o, const char *what, strata_buffer *out)
{
    if (!Py_IS_TYPE(o, pys.ChipBuffer)) {
        PyErr_Format(PyExc_TypeError, "%s must be a ChipBuffer (from Worker.malloc), not %s", what,
                     pys_tname(o));
        return -1;
    }
    *out = ((pys_chipbuf *)o)->b;
    return 0;
}

static PyObject *worker_free(PyObject *self, PyObject *arg)
{
    pys_worker *w = (pys_worker *)self;
    strata_buffer b;
    if (check_caller(w, "free") < 0 || chipbuf_arg(arg, "free()'s argument", &b) < 0)
        return NULL;
    int rc;
    PYS_RELEASE_GIL(w)
    rc = strata_worker_free(w->w, b);
    PYS_ACQUIRE_GIL(w)
    if (rc != STRATA_OK)
        return pys_raise(rc, NULL);
    Py_RETURN_NONE;
}

/* Host memory for a copy: the buffer protocol, or __dlpack__ through
   strata._runtime (numpy, torch CPU tensors). */
static int host_view(PyObject *o, bool writable, Py_buffer *v, PyObject **keep)
{
    *keep = NULL;
    if (PyObject_GetBuffer(o, v, writable ? (PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) : PyBUF_C_CONTIGUOUS) == 0)
        return 0;
    if (PyObject_CheckBuffer(o))
        return -1;   /* it has a buffer, not a usable one (read-only, not contiguous): that error says so */
    PyErr_Clear();
    if (!PyObject_HasAttrString(o, "__dlpack__")) {
        PyErr_Format(PyExc_TypeError,
                     "%s must be host memory with the buffer protocol or DLPack (a numpy array, a HostBuffer, a "
                     "torch CPU tensor), not %s", writable ? "copy_from's dst" : "copy_to's src", pys_tname(o));
        return -1;
    }
    PyObject *f = pys_runtime_attr("as_host_array");
    PyObject *arr = f ? PyObject_CallFunctionObjArgs(f, o, NULL) : NULL;
    Py_XDECREF(f);
    if (!arr)
        return -1;
    int rc = PyObject_GetBuffer(arr, v, writable ? (PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) : PyBUF_C_CONTIGUOUS);
    if (rc < 0)
        Py_DECREF(arr);
    else
        *keep = arr;
    return rc;
}

/* copy_to(dst: ChipBuffer, src, offset=0): host -> chip, len(src) bytes;
   copy_from(dst, src: ChipBuffer, offset=0): chip -> host, len(dst) bytes. */
static PyObject *copy(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, bool to_chip)
{
    pys_worker *w = (pys_worker *)self;
    static const char *const names[] = {"dst", "src", "offset", NULL};
    const char *call = to_chip ? "copy_to" : "copy_from";
    PyObject *a[3];
    strata_buffer b;
    uint64_t off = 0;
    if (pys_parse(call, args, nargs, kwnames, names, 2, 3, a) < 0 || check_caller(w, call) < 0)
        return NULL;
    PyObject *chip = to_chip ? a[0] : a[1], *host = to_chip ? a[1] : a[0];
    if (chipbuf_arg(chip, to_chip ? "copy_to's dst" : "copy_from's src", &b) < 0 ||
        (a[2] && pys_u64(a[2], "offset", &off) < 0))
        return NULL;
    Py_buffer v;
    PyObject *keep;
    if (host_view(host, !to_chip, &v, &keep) < 0)
        return NULL;
    int rc;
    PYS_RELEASE_GIL(w)
    rc = to_chip ? strata_worker_copy_to(w->w, b, off, v.buf, (uint64_t)v.len)
                 : strata_worker_copy_from(w->w, v.buf, b, off, (uint64_t)v.len);
    PYS_ACQUIRE_GIL(w)
    PyBuffer_Release(&v);
    Py_XDECREF(keep);
    if (rc != STRATA_OK)
        return pys_raise(rc, NULL);
    Py_RETURN_NONE;
}

static PyObject *worker_copy_to(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return copy(self, args, nargs, kwnames, true);
}

static PyObject *worker_copy_from(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return copy(self, args, nargs, kwnames, false);
}

static PyObject *worker_host_alloc(PyObject *self, PyObject *arg)
{
    pys_worker *w = (pys_worker *)self;
    uint64_t n;
    if (check_caller(w, "host_alloc") < 0 || pys_u64(arg, "nbytes", &n) < 0)
        return NULL;
    void *p;
    int rc = strata_worker_host_alloc(w->w, n, &p);
    if (rc != STRATA_OK)
        return pys_raise(rc, NULL);
    PyObject *b = pys_hostbuf_new(self, p, n);
    if (!b)
        (void)strata_worker_host_free(w->w, p);
    return b;
}

/* interrupt(): stop the run in flight, from any thread (a signal handler on
   the main thread for a run driven by another, a watchdog). The run stops as
   on Ctrl-C and raises RunInterruptedError; without a run, nothing happens. */
static PyObject *worker_interrupt(PyObject *self, PyObject *unused)
{
    (void)unused;
    pys_worker *w = (pys_worker *)self;
    if (w->in_run)
        atomic_store(&w->stop_requested, 1);
    Py_RETURN_NONE;
}

static PyObject *worker_child_pid(PyObject *self, PyObject *arg)
{
    pys_worker *w = (pys_worker *)self;
    long i = PyLong_AsLong(arg);
    if ((i == -1 && PyErr_Occurred()) || check_caller(w, "child_pid") < 0)
        return NULL;
    pid_t pid;
    int rc = strata_worker_child_pid(w->w, (int)i, &pid);
    if (rc != STRATA_OK)
        return pys_raise(rc, NULL);
    return PyLong_FromLong((long)pid);
}

static PyObject *worker_stats(PyObject *self, PyObject *unused)
{
    (void)unused;
    pys_worker *w = (pys_worker *)self;
    if (check_caller(w, "stats") < 0)
        return NULL;
    strata_run_stats s;
    int rc = strata_worker_stats(w->w, &s);
    if (rc != STRATA_OK)
        return pys_raise(rc, NULL);
    PyObject *d = Py_BuildValue("{s:K,s:K,s:K,s:{s:K,s:K},s:{s:K,s:K},s:{s:K,s:K},s:K}", "tasks_completed",
                         (unsigned long long)s.tasks_completed, "tasks_failed", (unsigned long long)s.tasks_failed,
                         "tasks_canceled", (unsigned long long)s.tasks_canceled, "task_window", "size",
                         (unsigned long long)s.task_window.size, "high_water",
                         (unsigned long long)s.task_window.high_water, "heap", "size",
                         (unsigned long long)s.heap.size, "high_water", (unsigned long long)s.heap.high_water,
                         "dep_pool", "size", (unsigned long long)s.dep_pool.size, "high_water",
                         (unsigned long long)s.dep_pool.high_water, "child_restarts",
                         (unsigned long long)s.child_restarts);
    if (!d)
        return NULL;
    /* the last run in time, and (L3+, once the children exist) each child */
    strata_run_info info = {.size = sizeof info};
    int irc = strata_worker_run_info(w->w, &info);
    if (irc != STRATA_OK) {
        Py_DECREF(d);
        return pys_raise(irc, NULL);
    }
    PyObject *last = irc == STRATA_OK
                         ? Py_BuildValue("{s:I,s:K,s:K,s:K,s:K}", "tasks", info.tasks, "wall_ns",
                                         (unsigned long long)info.wall_ns, "orch_ns", (unsigned long long)info.orch_ns,
                                         "longest_task_ns", (unsigned long long)info.longest_task_ns, "longest_task",
                                         (unsigned long long)info.longest_task)
                         : NULL;
    if (last && w->level == 2) {
        /* a chip's rings of each scope depth (0, 1, 2, 3 and deeper) */
        PyObject *depths = PyList_New(0);
        for (int k = 0; depths && k < 4; k++) {
            PyObject *one = Py_BuildValue("{s:{s:K,s:K},s:{s:K,s:K},s:{s:K,s:K}}", "task_window", "size",
                                          (unsigned long long)info.task_window_by_depth[k].size, "high_water",
                                          (unsigned long long)info.task_window_by_depth[k].high_water, "heap",
                                          "size", (unsigned long long)info.heap_by_depth[k].size, "high_water",
                                          (unsigned long long)info.heap_by_depth[k].high_water, "dep_pool", "size",
                                          (unsigned long long)info.dep_pool_by_depth[k].size, "high_water",
                                          (unsigned long long)info.dep_pool_by_depth[k].high_water);
            if (!one || PyList_Append(depths, one) < 0)
                Py_CLEAR(depths);
            Py_XDECREF(one);
        }
        if (!depths || PyDict_SetItemString(last, "rings_by_depth", depths) < 0)
            Py_CLEAR(last);
        Py_XDECREF(depths);
    }
    if (!last || PyDict_SetItemString(d, "last_run", last) < 0) {
        Py_XDECREF(last);
        Py_DECREF(d);
        return NULL;
    }
    Py_DECREF(last);
    uint32_t count = 0;
    if (w->level >= 3 && strata_worker_child_stats(w->w, NULL, 0, 0, &count) == STRATA_OK) {
        strata_child_stats *cs = PyMem_Malloc((count ? count : 1) * sizeof *cs);
        PyObject *list = cs ? PyList_New(0) : PyErr_NoMemory();
        uint32_t got = count;
        if (list && strata_worker_child_stats(w->w, cs, sizeof *cs, count, &count) == STRATA_OK) {
            for (uint32_t i = 0; list && i < count && i < got; i++) {
                PyObject *c = Py_BuildValue("{s:i,s:l,s:K,s:K,s:K}", "worker", cs[i].worker, "pid", (long)cs[i].pid,
                                            "tasks", (unsigned long long)cs[i].tasks, "busy_ns",
                                            (unsigned long long)cs[i].busy_ns, "restarts",
                                            (unsigned long long)cs[i].restarts);
                if (!c || PyList_Append(list, c) < 0)
                    Py_CLEAR(list);
                Py_XDECREF(c);
            }
        }
        PyMem_Free(cs);
        if (!list || PyDict_SetItemString(d, "children", list) < 0) {
            Py_XDECREF(list);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(list);
    }
    return d;
}

/* ---- the type ---- */

static PyObject *worker_new(PyTypeObject *tp, PyObject *args, PyObject *kw)
{
    (void)args;
    (void)kw;
    pys_worker *w = (pys_worker *)((allocfunc)PyType_GetSlot(tp, Py_tp_alloc))(tp, 0);
    if (!w)
        return NULL;
    w->handles = PyDict_New();
    if (!w->handles) {
        Py_DECREF(w);
        return NULL;
    }
    static uint64_t next_serial;
    w->creator_pid = (long)getpid();
    w->serial = ++next_serial;
    return (PyObject *)w;
}

static int worker_traverse(PyObject *self, visitproc visit, void *arg)
{
    pys_worker *w = (pys_worker *)self;
    Py_VISIT(w->handles);
    Py_VISIT(w->dict);
    Py_VISIT(w->added);
    Py_VISIT(w->given_to);
    Py_VISIT(w->serving);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int worker_clear(PyObject *self)
{
    pys_worker *w = (pys_worker *)self;
    Py_CLEAR(w->handles);
    Py_CLEAR(w->dict);
    Py_CLEAR(w->added);
    Py_CLEAR(w->given_to);
    Py_CLEAR(w->serving);
    return 0;
}

static void worker_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    pys_worker *w = (pys_worker *)self;
    PyObject_GC_UnTrack(self);
    if (w->weakreflist)
        PyObject_ClearWeakRefs(self);
    /* Collected without close(): close now (in a process that is not the
       creator's this releases only that process's copies). */
    close_now(w);
    worker_clear(self);
    ((freefunc)PyType_GetSlot(tp, Py_tp_free))(self);
    Py_DECREF(tp);
}

static PyMethodDef worker_methods[] = {
    {"_create", (PyCFunction)(void (*)(void))worker_create, METH_FASTCALL, NULL},
    {"_adopt", (PyCFunction)(void (*)(void))worker_adopt, METH_FASTCALL, NULL},
    {"_register_chip", (PyCFunction)(void (*)(void))worker_register_chip, METH_FASTCALL, NULL},
    {"_register_sub", (PyCFunction)(void (*)(void))worker_register_sub, METH_FASTCALL, NULL},
    {"_register_orch", (PyCFunction)(void (*)(void))worker_register_orch, METH_FASTCALL, NULL},
    {"_add_rank", worker_add_rank, METH_O, NULL},
    {"_add_worker", worker_add_worker, METH_O, NULL},
    {"unregister", worker_unregister, METH_O, "unregister(h): retire a handle; tasks on it fail with NotFoundError."},
    {"init", worker_init, METH_NOARGS, "Start the worker: its chips and SUB children (L3), or its chip (L2)."},
    {"close", worker_close, METH_NOARGS, "Stop every child and release everything; any number of times."},
    {"run", (PyCFunction)(void (*)(void))worker_run, METH_FASTCALL | METH_KEYWORDS,
     "run(orch_fn, args=None, config=None) at L3; run(handle, args=None, config=None) at L2."},
    {"malloc", (PyCFunction)(void (*)(void))worker_malloc, METH_FASTCALL | METH_KEYWORDS,
     "malloc(nbytes, worker=0) -> ChipBuffer: chip-resident memory of one chip worker."},
    {"free", worker_free, METH_O, "free(buf): release a ChipBuffer."},
    {"copy_to", (PyCFunction)(void (*)(void))worker_copy_to, METH_FASTCALL | METH_KEYWORDS,
     "copy_to(dst: ChipBuffer, src, offset=0): host -> chip (any buffer-protocol or CPU DLPack object)."},
    {"copy_from", (PyCFunction)(void (*)(void))worker_copy_from, METH_FASTCALL | METH_KEYWORDS,
     "copy_from(dst, src: ChipBuffer, offset=0): chip -> host, len(dst) bytes."},
    {"host_alloc", worker_host_alloc, METH_O, "host_alloc(nbytes) -> HostBuffer: memory every child sees."},
    {"interrupt", worker_interrupt, METH_NOARGS,
     "Stop the run in flight from any thread: it settles as on Ctrl-C and raises RunInterruptedError."},
    {"child_pid", worker_child_pid, METH_O, "child_pid(i): the pid of child i (chips first, then SUB workers)."},
    {"stats", worker_stats, METH_NOARGS, "The worker's statistics, as a dict."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef worker_getset[] = {
    {"_state", worker_get_state, NULL, NULL, NULL},
    {"level", worker_get_level, NULL, "The worker's level (2 or 3).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef worker_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(pys_worker, weakreflist), READONLY, NULL},
    {"__dictoffset__", T_PYSSIZET, offsetof(pys_worker, dict), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot worker_slots[] = {
    {Py_tp_new, worker_new},
    {Py_tp_dealloc, worker_dealloc},
    {Py_tp_traverse, worker_traverse},
    {Py_tp_clear, worker_clear},
    {Py_tp_methods, worker_methods},
    {Py_tp_getset, worker_getset},
    {Py_tp_members, worker_members},
    {0, NULL},
};
PyType_Spec pys_worker_spec = {"strata._strata.Worker", sizeof(pys_worker), 0,
                               Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, worker_slots};
