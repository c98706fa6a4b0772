/* The orchestration object a level-3 run passes to orch_fn: submits, groups and
 * scopes. It is valid only during that call (it wraps the library's
 * strata_orch); afterwards every method raises StateError. */
#include "pystrata.h"

#include <stdlib.h>
#include <string.h>

typedef struct pys_orch {
    PyObject_HEAD
    strata_orch *o;       /* NULL once orch_fn has returned */
    pys_worker *w;        /* borrowed: the run holds a reference */
    PyObject *keep;       /* borrowed: the run's list of submitted TaskArgs */
} pys_orch;

PyObject *pys_orch_new(pys_worker *w, strata_orch *o, PyObject *keep)
{
    pys_orch *r = PyObject_New(pys_orch, pys.Orch);
    if (!r)
        return NULL;
    r->o = o;
    r->w = w;
    r->keep = keep;
    return (PyObject *)r;
}

void pys_orch_invalidate(PyObject *orch)
{
    ((pys_orch *)orch)->o = NULL;
}

static int live(pys_orch *o, const char *what)
{
    if (!o->o) {
        pys_raisef(STRATA_ESTATE, "orch.%s: this orchestration object belongs to a run that has returned", what);
        return -1;
    }
    if (PyThread_get_thread_ident() != o->w->busy_thread) {
        pys_raisef(STRATA_ESTATE, "orch.%s: called from thread %lu, but the run belongs to thread %lu; one thread "
                   "drives a worker, so submit from orch_fn's thread", what, PyThread_get_thread_ident(),
                   o->w->busy_thread);
        return -1;
    }
    return 0;
}

/* The library reads a task's tensors' memory until the run ends, but only
   copies the descriptions: the TaskArgs (and so the arrays they hold) stay
   alive until then, even when orch_fn drops them. */
static PyObject *submitted(pys_orch *o, int rc, PyObject *args)
{
    if (rc != STRATA_OK)
        return pys_raise(rc, NULL);
    if (args && args != Py_None && PyList_Append(o->keep, args) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *status(int rc)
{
    if (rc != STRATA_OK)
        return pys_raise(rc, NULL);
    Py_RETURN_NONE;
}

static int worker_id(PyObject *o, const char *what, int *out)
{
    long v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s must be an int, not %s", what, pys_tname(o));
        }
        return -1;
    }
    if (v < INT32_MIN || v > INT32_MAX) {
        pys_raisef(STRATA_ENOENT, "%s %ld is no chip worker", what, v);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* submit_next_level(h, args, config=None, *, worker) */
static PyObject *orch_submit_next_level(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    pys_orch *o = (pys_orch *)self;
    PyObject *a[4] = {NULL, NULL, NULL, NULL};
    if (kwnames && PyTuple_Size(kwnames) == 1 && nargs >= 2 && nargs <= 3 &&
        PyUnicode_CompareWithASCIIString(PyTuple_GetItem(kwnames, 0), "worker") == 0) {
        a[0] = args[0];   /* the usual call: positional, worker= */
        a[1] = args[1];
        a[2] = nargs == 3 ? args[2] : NULL;
        a[3] = args[nargs];
    } else {
        static const char *const names[] = {"h", "args", "config", "worker", NULL};
        if (pys_parse("submit_next_level", args, nargs, kwnames, names, 2, 3, a) < 0)
            return NULL;
        if (!a[3]) {
            PyErr_SetString(PyExc_TypeError, "submit_next_level() needs worker=: the chip worker to run it on");
            return NULL;
        }
    }
    uint32_t h;
    int wid;
    strata_task_args ta;
    strata_call_config cfg;
    bool has_cfg;
    if (live(o, "submit_next_level") < 0 || pys_handle_of(a[0], o->w, &h) < 0 || pys_taskargs_from(a[1], &ta) < 0 ||
        pys_call_config_from(a[2], &cfg, &has_cfg) < 0 || worker_id(a[3], "worker", &wid) < 0)
        return NULL;
    pys_taskargs_hold(a[1], 1);
    int rc = strata_submit_next_level(o->o, h, &ta, has_cfg ? &cfg : NULL, wid);
    pys_taskargs_hold(a[1], -1);
    return submitted(o, rc, a[1]);
}

/* A sequence of TaskArgs -> an array of views (PyMem; the caller frees) and
   *seq_out, the tuple holding them (a new reference: it keeps them alive
   through the submit and the run, whatever the caller passed). */
static strata_task_args *args_list(PyObject *list, uint32_t *n, PyObject **seq_out)
{
    PyObject *seq = PySequence_Tuple(list);
    if (!seq)
        return NULL;
    Py_ssize_t len = PyTuple_Size(seq);
    if (len < 1) {
        Py_DECREF(seq);
        pys_raise(STRATA_EINVAL, "a group needs at least one member's TaskArgs");
        return NULL;
    }
    strata_task_args *v = PyMem_Malloc((size_t)len * sizeof *v);
    if (!v) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < len; i++)
        if (pys_taskargs_from(PyTuple_GetItem(seq, i), &v[i]) < 0) {
            PyMem_Free(v);
            Py_DECREF(seq);
            return NULL;
        }
    *seq_out = seq;
    *n = (uint32_t)len;
    return v;
}

static void hold_all(PyObject *seq, int d)
{
    for (Py_ssize_t i = 0; i < PyTuple_Size(seq); i++)
        pys_taskargs_hold(PyTuple_GetItem(seq, i), d);
}

/* submit_next_level_group(h, args_list, config=None, *, workers) */
static PyObject *orch_submit_next_level_group(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                              PyObject *kwnames)
{
    pys_orch *o = (pys_orch *)self;
    static const char *const names[] = {"h", "args_list", "config", "workers", NULL};
    PyObject *a[4];
    if (pys_parse("submit_next_level_group", args, nargs, kwnames, names, 2, 3, a) < 0)
        return NULL;
    if (!a[3]) {
        PyErr_SetString(PyExc_TypeError, "submit_next_level_group() needs workers=: one chip worker per member");
        return NULL;
    }
    uint32_t h, n;
    strata_call_config cfg;
    bool has_cfg;
    if (live(o, "submit_next_level_group") < 0 || pys_handle_of(a[0], o->w, &h) < 0 ||
        pys_call_config_from(a[2], &cfg, &has_cfg) < 0)
        return NULL;
    PyObject *seq;
    strata_task_args *v = args_list(a[1], &n, &seq);
    if (!v)
        return NULL;
    PyObject *ws = PySequence_Tuple(a[3]);
    int *ids = ws ? PyMem_Malloc(n * sizeof *ids) : NULL;
    PyObject *r = NULL;
    if (!ids) {
        if (ws)
            PyErr_NoMemory();
        goto out;
    }
    if ((uint32_t)PyTuple_Size(ws) != n) {
        pys_raisef(STRATA_EINVAL, "submit_next_level_group: %u members' args but %zd workers", n, PyTuple_Size(ws));
        goto out;
    }
    for (uint32_t i = 0; i < n; i++)
        if (worker_id(PyTuple_GetItem(ws, i), "workers[i]", &ids[i]) < 0)
            goto out;
    hold_all(seq, 1);
    int rc = strata_submit_next_level_group(o->o, h, v, n, has_cfg ? &cfg : NULL, ids);
    hold_all(seq, -1);
    r = submitted(o, rc, seq);
out:
    PyMem_Free(ids);
    Py_XDECREF(ws);
    PyMem_Free(v);
    Py_DECREF(seq);
    return r;
}

/* submit_sub(h, args=None) */
static PyObject *orch_submit_sub(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    pys_orch *o = (pys_orch *)self;
    PyObject *a[2] = {NULL, NULL};
    if (!kwnames && (nargs == 1 || nargs == 2)) {
        a[0] = args[0];
        a[1] = nargs == 2 ? args[1] : NULL;
    } else {
        static const char *const names[] = {"h", "args", NULL};
        if (pys_parse("submit_sub", args, nargs, kwnames, names, 1, 2, a) < 0)
            return NULL;
    }
    uint32_t h;
    strata_task_args ta;
    if (live(o, "submit_sub") < 0 || pys_handle_of(a[0], o->w, &h) < 0 || pys_taskargs_from(a[1], &ta) < 0)
        return NULL;
    pys_taskargs_hold(a[1], 1);
    int rc = strata_submit_sub(o->o, h, &ta);
    pys_taskargs_hold(a[1], -1);
    return submitted(o, rc, a[1]);
}

/* submit_sub_group(h, args_list) */
static PyObject *orch_submit_sub_group(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    pys_orch *o = (pys_orch *)self;
    static const char *const names[] = {"h", "args_list", NULL};
    PyObject *a[2];
    uint32_t h, n;
    if (pys_parse("submit_sub_group", args, nargs, kwnames, names, 2, 2, a) < 0 || live(o, "submit_sub_group") < 0 ||
        pys_handle_of(a[0], o->w, &h) < 0)
        return NULL;
    PyObject *seq;
    strata_task_args *v = args_list(a[1], &n, &seq);
    if (!v)
        return NULL;
    hold_all(seq, 1);
    int rc = strata_submit_sub_group(o->o, h, v, n);
    hold_all(seq, -1);
    PyObject *r = submitted(o, rc, seq);
    PyMem_Free(v);
    Py_DECREF(seq);
    return r;
}

static PyObject *orch_scope_begin(PyObject *self, PyObject *unused)
{
    (void)unused;
    pys_orch *o = (pys_orch *)self;
    return live(o, "scope_begin") < 0 ? NULL : status(strata_orch_scope_begin(o->o));
}

static PyObject *orch_scope_end(PyObject *self, PyObject *unused)
{
    (void)unused;
    pys_orch *o = (pys_orch *)self;
    return live(o, "scope_end") < 0 ? NULL : status(strata_orch_scope_end(o->o));
}

/* ---- `with orch.scope():` ---- */

typedef struct pys_scope {
    PyObject_HEAD
    PyObject *orch;
} pys_scope;

static PyObject *orch_scope(PyObject *self, PyObject *unused)
{
    (void)unused;
    pys_scope *s = PyObject_New(pys_scope, pys.Scope);
    if (!s)
        return NULL;
    s->orch = Py_NewRef(self);
    return (PyObject *)s;
}

static PyObject *scope_enter(PyObject *self, PyObject *unused)
{
    PyObject *r = orch_scope_begin(((pys_scope *)self)->orch, unused);
    if (!r)
        return NULL;
    Py_DECREF(r);
    return Py_NewRef(self);
}

static PyObject *scope_exit(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    (void)nargs;
    PyObject *r = orch_scope_end(((pys_scope *)self)->orch, NULL);
    if (!r)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_FALSE;   /* never swallows the body's exception */
}

static void scope_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    Py_XDECREF(((pys_scope *)self)->orch);
    ((freefunc)PyType_GetSlot(tp, Py_tp_free))(self);
    Py_DECREF(tp);
}

static PyMethodDef scope_methods[] = {
    {"__enter__", scope_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))scope_exit, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot scope_slots[] = {
    {Py_tp_dealloc, scope_dealloc},
    {Py_tp_methods, scope_methods},
    {0, NULL},
};
PyType_Spec pys_scope_spec = {"strata._Scope", sizeof(pys_scope), 0, Py_TPFLAGS_DEFAULT, scope_slots};

static void orch_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    ((freefunc)PyType_GetSlot(tp, Py_tp_free))(self);
    Py_DECREF(tp);
}

static PyMethodDef orch_methods[] = {
    {"submit_next_level", (PyCFunction)(void (*)(void))orch_submit_next_level, METH_FASTCALL | METH_KEYWORDS,
     "submit_next_level(h, args, config=None, *, worker): a chip task on chip worker `worker`."},
    {"submit_next_level_group", (PyCFunction)(void (*)(void))orch_submit_next_level_group,
     METH_FASTCALL | METH_KEYWORDS,
     "submit_next_level_group(h, args_list, config=None, *, workers): one task on several chips at once."},
    {"submit_sub", (PyCFunction)(void (*)(void))orch_submit_sub, METH_FASTCALL | METH_KEYWORDS,
     "submit_sub(h, args=None): a SUB task on any SUB worker."},
    {"submit_sub_group", (PyCFunction)(void (*)(void))orch_submit_sub_group, METH_FASTCALL | METH_KEYWORDS,
     "submit_sub_group(h, args_list): one task on several SUB workers at once."},
    {"scope", orch_scope, METH_NOARGS, "with orch.scope(): ... (scope_begin / scope_end around the block)."},
    {"scope_begin", orch_scope_begin, METH_NOARGS, NULL},
    {"scope_end", orch_scope_end, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

/* orch.worker: the Worker whose run this is (in a Worker added one level
   down, the one that runs it there: how an orchestration function shared by
   several added Workers finds the handles registered on its own). */
static PyObject *orch_get_worker(PyObject *self, void *c)
{
    (void)c;
    pys_orch *o = (pys_orch *)self;
    if (live(o, "worker") < 0)
        return NULL;
    return Py_NewRef((PyObject *)o->w);
}

static PyGetSetDef orch_getset[] = {
    {"worker", orch_get_worker, NULL, "The Worker whose run this is.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot orch_slots[] = {
    {Py_tp_dealloc, orch_dealloc},
    {Py_tp_methods, orch_methods},
    {Py_tp_getset, orch_getset},
    {Py_tp_doc, "The orchestration object of a level-3 run (the first argument of orch_fn)."},
    {0, NULL},
};
PyType_Spec pys_orch_spec = {"strata.Orchestrator", sizeof(pys_orch), 0, Py_TPFLAGS_DEFAULT, orch_slots};

/* ---- orchestration functions run by added Workers (L4+) ----
 *
 * A Python function registered on a level-4+ Worker as an orchestration
 * function runs in the process of each Worker added to it: the library's worker
 * child calls the trampoline from strata_worker_run on the added worker. The
 * record is in this process's memory, made before init, so the children
 * (forked at init) see it. The trampoline takes the GIL (the fork hooks left
 * it free in the child), finds the added Worker that runs (the one whose
 * library worker is RUNNING in this process), and calls
 * fn(orch, args, config): args a TaskArgs over the task's tensors (they lie in
 * memory this process sees), config a CallConfig. An exception fails the task
 * with its traceback as the message. */

typedef struct child_orch_record {
    PyObject   *fn;     /* borrowed: the handle holds it */
    pys_worker *top;    /* borrowed: the Worker it was registered on (its added list) */
} child_orch_record;

static PyObject *taskargs_of(const strata_task_args *a)
{
    PyObject *ta = PyObject_CallNoArgs((PyObject *)pys.TaskArgs);
    for (uint32_t i = 0; ta && a && i < a->ntensors; i++) {
        pys_tensor *t = PyObject_GC_New(pys_tensor, pys.Tensor);
        if (!t) {
            Py_CLEAR(ta);
            break;
        }
        t->t = a->tensors[i];
        t->owner = NULL;
        PyObject_GC_Track(t);
        PyObject *r = PyObject_CallMethod(ta, "add_tensor", "Oi", (PyObject *)t, (int)a->tags[i]);
        Py_DECREF(t);
        if (!r)
            Py_CLEAR(ta);
        Py_XDECREF(r);
    }
    for (uint32_t i = 0; ta && a && i < a->nscalars; i++) {
        PyObject *r = PyObject_CallMethod(ta, "add_scalar", "K", (unsigned long long)a->scalars[i]);
        if (!r)
            Py_CLEAR(ta);
        Py_XDECREF(r);
    }
    return ta;
}

static PyObject *call_config_of(const strata_call_config *c)
{
    PyObject *mod = PyImport_ImportModule("strata");
    PyObject *cls = mod ? PyObject_GetAttrString(mod, "CallConfig") : NULL;
    Py_XDECREF(mod);
    PyObject *r = cls ? PyObject_CallFunction(cls, "IKKKI", c->timeout_ms, (unsigned long long)c->ring_task_window,
                                              (unsigned long long)c->ring_heap, (unsigned long long)c->ring_dep_pool,
                                              c->block_dim)
                      : NULL;
    Py_XDECREF(cls);
    if (r) {   /* the trace choice travels too */
        PyObject *trace = PyLong_FromUnsignedLong(c->trace);
        if (!trace || PyObject_SetAttrString(r, "trace", trace) < 0)
            Py_CLEAR(r);
        Py_XDECREF(trace);
    }
    /* per-depth sizes read back as lists of four; a depth without its own
       entry shows the scalar, which it took (Python holds one or the other) */
    static const char *const names[3] = {"ring_task_window", "ring_heap", "ring_dep_pool"};
    const uint64_t *by[3] = {c->ring_task_window_by_depth, c->ring_heap_by_depth, c->ring_dep_pool_by_depth};
    const uint64_t scalar[3] = {c->ring_task_window, c->ring_heap, c->ring_dep_pool};
    for (int k = 0; r && k < 3; k++) {
        if (!(by[k][0] | by[k][1] | by[k][2] | by[k][3]))
            continue;
        unsigned long long v[4];
        for (int d = 0; d < 4; d++)
            v[d] = (unsigned long long)(by[k][d] ? by[k][d] : scalar[k]);
        PyObject *list = Py_BuildValue("[KKKK]", v[0], v[1], v[2], v[3]);
        if (!list || PyObject_SetAttrString(r, names[k], list) < 0)
            Py_CLEAR(r);
        Py_XDECREF(list);
    }
    return r;
}

static pys_worker *running_child(pys_worker *top)
{
    if (top->serving)   /* an MPI rank serving a Worker to rank 0 (mpi_serve) */
        return (pys_worker *)top->serving;
    for (Py_ssize_t i = 0; top->added && i < PyList_Size(top->added); i++) {
        pys_worker *c = (pys_worker *)PyList_GetItem(top->added, i);
        if (c->w && strata_worker_state(c->w) == STRATA_STATE_RUNNING)
            return c;
    }
    return NULL;
}

static int child_orch_trampoline(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg,
                                 void *ctx)
{
    PyGILState_STATE g = PyGILState_Ensure();
    child_orch_record *rec = ctx;
    int rc = STRATA_OK;
    pys_worker *w = running_child(rec->top);
    PyObject *keep = PyList_New(0), *ta = NULL, *pc = NULL, *orch = NULL, *r = NULL;
    if (!w) {
        rc = strata_task_error("the Python orchestration function found no added Worker running in this process");
        goto out;
    }
    ta = keep ? taskargs_of(args) : NULL;
    pc = ta ? call_config_of(cfg) : NULL;
    orch = pc ? pys_orch_new(w, o, keep) : NULL;
    PyObject *call = orch ? pys_runtime_attr("orch_call") : NULL;
    if (call) {
        unsigned long prev = w->busy_thread;
        w->busy_thread = PyThread_get_thread_ident();
        w->in_run = true;
        r = PyObject_CallFunctionObjArgs(call, rec->fn, orch, ta, pc, NULL);
        w->in_run = false;
        w->busy_thread = prev;
        pys_orch_invalidate(orch);
        Py_DECREF(call);
    }
    if (!r) {   /* the machinery failed (orch_call catches the function's own errors) */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyObject *str = value ? PyObject_Str(value) : NULL;
        const char *msg = str ? PyUnicode_AsUTF8AndSize(str, NULL) : NULL;
        rc = strata_task_error("the Python orchestration function could not be called: %s",
                               msg ? msg : "unknown error");
        Py_XDECREF(str);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        PyErr_Clear();
    } else if (r != Py_None) {
        const char *msg = PyUnicode_AsUTF8AndSize(r, NULL);
        rc = strata_task_error("%s", msg ? msg : "the orchestration function raised");
        PyErr_Clear();
    }
out:
    Py_XDECREF(r);
    Py_XDECREF(orch);
    Py_XDECREF(pc);
    Py_XDECREF(ta);
    Py_XDECREF(keep);   /* (the level-3 run goes on with copies of the tasks' arguments; the memory they
                           name is the levels above's or this worker's heap, never these objects') */
    PyGILState_Release(g);
    return rc;
}

int pys_child_orch_register(pys_worker *w, PyObject *fn, const char *name, uint32_t *out)
{
    if (!PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "an orchestration function must be callable, not %s", pys_tname(fn));
        return -1;
    }
    child_orch_record *rec = malloc(sizeof *rec);   /* kept for the process's life: children hold the pointer */
    if (!rec) {
        PyErr_NoMemory();
        return -1;
    }
    rec->fn = fn;
    rec->top = w;
    strata_handle h;
    int rc;
    PYS_RELEASE_GIL(w)
    rc = name ? strata_worker_register_orch_named(w->w, name, child_orch_trampoline, rec, &h)
              : strata_worker_register_orch(w->w, child_orch_trampoline, rec, &h);
    PYS_ACQUIRE_GIL(w)
    if (rc != STRATA_OK) {
        free(rec);   /* before init only (worker.py): no child holds it */
        pys_raise(rc, NULL);
        return -1;
    }
    *out = h;
    return 0;
}
