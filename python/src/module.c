/* The _strata module: exception classes, the embedding hooks that keep the
 * interpreter sound around Strata's forks and sleeps, and the module table.
 *
 * The GIL rules (docs/python.md, "Threads, forks and Ctrl-C"):
 *   - A level-3 run holds the GIL on the driving thread, so Strata calls the
 *     orchestration function without taking it again; the wait hooks release it
 *     for each sleep of the run and take it back when the thread wakes.
 *   - Every other blocking call (init, close, copies, a level-2 run) releases
 *     the GIL around the library call.
 *   - Strata forks the spawner at init (on the thread calling init, GIL
 *     released) and the spawner forks every child. Around each fork the hooks
 *     do what os.fork() does: take the GIL, flush sys.stdout and sys.stderr,
 *     PyOS_BeforeFork, then PyOS_AfterFork_Parent or _Child, and let go of the
 *     GIL again. So os.register_at_fork handlers run, no output is printed
 *     twice, and a child never waits for a GIL another thread held at the fork. */

#include "pystrata.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

pys_state pys;

/* ---- errors ---- */

static const struct {
    int status;
    const char *name;
    const char *builtin;   /* attribute of builtins */
    const char *doc;
} error_classes[] = {
    {STRATA_EINVAL, "InvalidArgumentError", "ValueError", "A bad argument (STRATA_EINVAL)."},
    {STRATA_ESTATE, "StateError", "RuntimeError", "Not allowed in the worker's state (STRATA_ESTATE)."},
    {STRATA_ENOENT, "NotFoundError", "LookupError", "An unknown handle, worker id, symbol or file (STRATA_ENOENT)."},
    {STRATA_ENOMEM, "OutOfMemoryError", "MemoryError", "Host or device memory exhausted (STRATA_ENOMEM)."},
    {STRATA_ERING, "RingError", "RuntimeError", "A request can never fit its ring (STRATA_ERING)."},
    {STRATA_ETASK, "TaskError", "RuntimeError",
     "A kernel, SUB function or orchestration function failed (STRATA_ETASK)."},
    {STRATA_ECANCELED, "CanceledError", "RuntimeError",
     "Not run because something it depended on failed (STRATA_ECANCELED)."},
    {STRATA_ECHILD, "ChildDiedError", "ChildProcessError", "A child process exited or was killed (STRATA_ECHILD)."},
    {STRATA_ETIMEDOUT, "TaskTimeoutError", "TimeoutError",
     "A task, init or close passed its deadline (STRATA_ETIMEDOUT)."},
    {STRATA_EFAILED, "WorkerFailedError", "RuntimeError", "The worker is FAILED; close it (STRATA_EFAILED)."},
    {STRATA_ESYS, "SystemCallError", "OSError", "A system call failed (STRATA_ESYS)."},
    {STRATA_EINTR, "RunInterruptedError", "InterruptedError", "The run was stopped by an interrupt (STRATA_EINTR)."},
};

PyObject *pys_raise(int rc, const char *msg)
{
    if (!msg)
        msg = strata_last_error();
    if (!msg || !*msg)
        msg = strata_status_name(rc);
    PyObject *cls = (rc < 0 && -rc < 16 && pys.errors[-rc]) ? pys.errors[-rc] : pys.StrataError;
    PyObject *text = PyUnicode_DecodeUTF8(msg, (Py_ssize_t)strlen(msg), "replace");
    if (!text)
        return NULL;
    PyObject *exc = PyObject_CallFunctionObjArgs(cls, text, NULL);
    if (exc) {
        PyObject *status = PyLong_FromLong(rc);
        PyObject *name = PyUnicode_FromString(strata_status_name(rc));
        if (!status || !name || PyObject_SetAttrString(exc, "status", status) < 0 ||
            PyObject_SetAttrString(exc, "status_name", name) < 0)
            Py_CLEAR(exc);
        Py_XDECREF(status);
        Py_XDECREF(name);
    }
    Py_DECREF(text);
    if (exc) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

const char *pys_tname(PyObject *o)
{
    static _Thread_local char buf[128];
    PyObject *n = PyType_GetName(Py_TYPE(o));
    const char *s = n ? PyUnicode_AsUTF8AndSize(n, NULL) : NULL;
    snprintf(buf, sizeof buf, "%s", s ? s : "?");
    Py_XDECREF(n);
    PyErr_Clear();
    return buf;
}

PyObject *pys_raisef(int rc, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return pys_raise(rc, buf);
}

/* ---- the run's thread record and the hooks ---- */

static _Thread_local pys_run *current_run;
static _Thread_local PyGILState_STATE fork_gil;

void pys_run_enter(pys_run *r, _Atomic int *stop)
{
    r->stop = stop;
    /* A run inside a run (orch_fn driving another worker) keeps its own
       record; wait hooks apply to the innermost. */
    r->saved = NULL;
    r->exc = NULL;
    r->interrupted = false;
    r->prev_ = current_run;
    current_run = r;
}

void pys_run_leave(pys_run *r)
{
    current_run = r->prev_;
}

void pys_run_keep_exception(void)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (!type)
        return;
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb && value)
        PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    if (current_run && !current_run->exc)
        current_run->exc = value;
    else
        Py_XDECREF(value);
}

static void flush_stream(const char *name)
{
    PyObject *s = PySys_GetObject(name);   /* borrowed */
    if (s && s != Py_None) {
        PyObject *r = PyObject_CallMethod(s, "flush", NULL);
        Py_XDECREF(r);
    }
    PyErr_Clear();
}

static void hook_fork_prepare(void *ctx)
{
    (void)ctx;
    fork_gil = PyGILState_Ensure();
    flush_stream("stdout");
    flush_stream("stderr");
    PyOS_BeforeFork();
}

static void hook_fork_parent(void *ctx)
{
    (void)ctx;
    PyOS_AfterFork_Parent();
    PyGILState_Release(fork_gil);
}

static void hook_fork_child(void *ctx)
{
    (void)ctx;
    PyOS_AfterFork_Child();
    PyGILState_Release(fork_gil);
}

static void hook_wait_begin(void *ctx)
{
    (void)ctx;
    pys_run *r = current_run;
    if (r && !r->saved)
        r->saved = PyEval_SaveThread();
}

static void hook_wait_end(void *ctx)
{
    (void)ctx;
    pys_run *r = current_run;
    if (r && r->saved) {
        PyThreadState *t = r->saved;
        r->saved = NULL;
        PyEval_RestoreThread(t);
    }
}

/* Called with the GIL held (between wait_end and the next wait_begin): runs
   Python's signal handlers; a KeyboardInterrupt (or any exception a handler
   raises) stops the run and is raised by run() once it has settled. */
static int hook_interrupted(void *ctx)
{
    (void)ctx;
    pys_run *r = current_run;
    if (!r || r->saved)
        return 0;
    if (r->interrupted)
        return 1;
    if (r->stop && atomic_exchange(r->stop, 0)) {
        r->interrupted = true;   /* Worker.interrupt(): run() raises RunInterruptedError */
        return 1;
    }
    if (PyErr_CheckSignals() < 0) {
        pys_run_keep_exception();
        r->interrupted = true;
        return 1;
    }
    return 0;
}

PyObject *pys_runtime_attr(const char *name)
{
    static PyObject *runtime;   /* the module, imported once (it imports numpy) */
    if (!runtime && !(runtime = PyImport_ImportModule("strata._runtime")))
        return NULL;
    return PyObject_GetAttrString(runtime, name);
}

/* ---- argument parsing for METH_FASTCALL | METH_KEYWORDS ---- */

int pys_parse(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
              const char *const *names, int nrequired, int npositional, PyObject **out)
{
    int n = 0;
    while (names[n])
        n++;
    if (nargs > npositional) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %d positional arguments (%zd given)", fname, npositional,
                     nargs);
        return -1;
    }
    for (int i = 0; i < n; i++)
        out[i] = i < nargs ? args[i] : NULL;
    Py_ssize_t nkw = kwnames ? PyTuple_Size(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GetItem(kwnames, k);
        int found = -1;
        for (int i = 0; i < n && found < 0; i++)
            if (PyUnicode_CompareWithASCIIString(key, names[i]) == 0)
                found = i;
        if (found < 0) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fname, key);
            return -1;
        }
        if (out[found]) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fname, names[found]);
            return -1;
        }
        out[found] = args[nargs + k];
    }
    for (int i = 0; i < nrequired; i++)
        if (!out[i]) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fname, names[i]);
            return -1;
        }
    return 0;
}

int pys_u64(PyObject *o, const char *what, uint64_t *out)
{
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %s", what, pys_tname(o));
        return -1;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(o);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        /* A negative scalar is stored as its two's complement, as C would. */
        long long s = PyLong_AsLongLong(o);
        if (s == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            PyErr_Format(PyExc_OverflowError, "%s does not fit in 64 bits", what);
            return -1;
        }
        v = (unsigned long long)s;
    }
    *out = v;
    return 0;
}

/* ---- module functions ---- */

static PyObject *mod_status_name(PyObject *m, PyObject *arg)
{
    (void)m;
    long v = PyLong_AsLong(arg);
    if (v == -1 && PyErr_Occurred())
        return NULL;
    return PyUnicode_FromString(strata_status_name((int)v));
}

static PyObject *mod_last_error(PyObject *m, PyObject *unused)
{
    (void)m;
    (void)unused;
    return PyUnicode_DecodeUTF8(strata_last_error(), (Py_ssize_t)strlen(strata_last_error()), "replace");
}

static PyObject *mod_version(PyObject *m, PyObject *unused)
{
    (void)m;
    (void)unused;
    return PyUnicode_FromString(strata_version_string());
}

/* The hooks are installed at import; tests and embedders may take them off
   and put them back. */
static PyObject *mod_set_hooks(PyObject *m, PyObject *arg)
{
    (void)m;
    int on = PyObject_IsTrue(arg);
    if (on < 0)
        return NULL;
    strata_hooks h = {hook_fork_prepare, hook_fork_parent, hook_fork_child, hook_wait_begin, hook_wait_end,
                      hook_interrupted, NULL};
    int rc = strata_set_hooks(on ? &h : NULL);
    if (rc != STRATA_OK)
        return pys_raise(rc, NULL);
    Py_RETURN_NONE;
}

static PyObject *mod_trace_begin(PyObject *m, PyObject *arg)
{
    (void)m;
    PyObject *bytes = NULL;
    if (!PyUnicode_FSConverter(arg, &bytes))
        return NULL;
    const char *path = PyBytes_AsString(bytes);
    int rc = path ? strata_trace_begin(path) : STRATA_EINVAL;
    Py_DECREF(bytes);
    if (rc)
        return pys_raise(rc, NULL);
    Py_RETURN_NONE;
}

static PyObject *mod_trace_end(PyObject *m, PyObject *unused)
{
    (void)m;
    (void)unused;
    int rc = strata_trace_end();
    if (rc)
        return pys_raise(rc, NULL);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"trace_begin", mod_trace_begin, METH_O, "Open a trace into path (strata_trace_begin)."},
    {"trace_end", mod_trace_end, METH_NOARGS, "Write and close the open trace (strata_trace_end)."},
    {"status_name", mod_status_name, METH_O, "The C name of a status code (STRATA_EINVAL, ...)."},
    {"last_error", mod_last_error, METH_NOARGS, "The calling thread's last Strata error message."},
    {"version", mod_version, METH_NOARGS, "The library's version string."},
    {"_set_hooks", mod_set_hooks, METH_O, "Install (True) or remove (False) the interpreter's hooks."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_strata", "Strata's C extension; use the strata package.", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

static int add_int(PyObject *d, const char *name, long v)
{
    PyObject *o = PyLong_FromLong(v);
    int rc = o ? PyDict_SetItemString(d, name, o) : -1;
    Py_XDECREF(o);
    return rc;
}

/* The C constants, for the package's enums and for the tests that check them
   against the headers. */
static int add_constants(PyObject *m)
{
    PyObject *statuses = PyDict_New(), *dtypes = PyDict_New(), *tags = PyDict_New(), *states = PyDict_New();
    int rc = -1;
    if (!statuses || !dtypes || !tags || !states)
        goto out;
    for (int s = 0; s >= -64; s--) {
        const char *n = strata_status_name(s);
        if (strcmp(n, "STRATA_UNKNOWN") == 0)
            break;
        if (add_int(statuses, n, s) < 0)
            goto out;
    }
#define DT(x) if (add_int(dtypes, #x, STRATA_##x) < 0) goto out;
    DT(U8) DT(I8) DT(U16) DT(I16) DT(U32) DT(I32) DT(U64) DT(I64) DT(F16) DT(BF16) DT(F32) DT(F64)
#undef DT
#define TG(x) if (add_int(tags, #x, STRATA_##x) < 0) goto out;
    TG(INPUT) TG(OUTPUT) TG(INOUT) TG(OUTPUT_EXISTING) TG(NO_DEP)
#undef TG
#define ST(x) if (add_int(states, #x, STRATA_STATE_##x) < 0) goto out;
    ST(NEW) ST(INITIALIZING) ST(READY) ST(RUNNING) ST(FAILED) ST(CLOSED)
#undef ST
    if (PyModule_AddObjectRef(m, "STATUSES", statuses) < 0 || PyModule_AddObjectRef(m, "C_DTYPES", dtypes) < 0 ||
        PyModule_AddObjectRef(m, "C_TAGS", tags) < 0 || PyModule_AddObjectRef(m, "C_STATES", states) < 0)
        goto out;
    rc = 0;
out:
    Py_XDECREF(statuses);
    Py_XDECREF(dtypes);
    Py_XDECREF(tags);
    Py_XDECREF(states);
    return rc;
}

static int add_errors(PyObject *m)
{
    PyObject *builtins = PyEval_GetBuiltins();   /* borrowed */
    pys.StrataError = PyErr_NewExceptionWithDoc(
        "strata.StrataError",
        "Base of every Strata error: .status (the C status), .status_name, .message (the library's words).",
        PyExc_Exception, NULL);
    if (!pys.StrataError || PyModule_AddObjectRef(m, "StrataError", pys.StrataError) < 0)
        return -1;
    for (size_t i = 0; i < sizeof error_classes / sizeof error_classes[0]; i++) {
        PyObject *builtin = PyDict_GetItemString(builtins, error_classes[i].builtin);   /* borrowed */
        if (!builtin)
            return -1;
        PyObject *bases = PyTuple_Pack(2, pys.StrataError, builtin);
        if (!bases)
            return -1;
        char qual[96];
        snprintf(qual, sizeof qual, "strata.%s", error_classes[i].name);
        /* status and status_name as class attributes too: the package's
           Python code raises these classes directly. */
        PyObject *dict = Py_BuildValue("{s:i,s:s}", "status", error_classes[i].status, "status_name",
                                       strata_status_name(error_classes[i].status));
        PyObject *cls = dict ? PyErr_NewExceptionWithDoc(qual, error_classes[i].doc, bases, dict) : NULL;
        Py_DECREF(bases);
        Py_XDECREF(dict);
        if (!cls || PyModule_AddObjectRef(m, error_classes[i].name, cls) < 0)
            return -1;
        pys.errors[-error_classes[i].status] = cls;
    }
    return 0;
}

static PyTypeObject *make_type(PyObject *m, PyType_Spec *spec, const char *name)
{
    PyObject *t = PyType_FromSpec(spec);
    if (!t)
        return NULL;
    if (PyModule_AddObjectRef(m, name, t) < 0) {
        Py_DECREF(t);
        return NULL;
    }
    return (PyTypeObject *)t;   /* the module keeps it; so does pys (owned ref) */
}

/* Chip callables come from shared objects that call strata_chip_submit and
   friends without linking the library: the extension carries the library and
   exports its strata_* symbols, and is promoted here to the global namespace
   so those objects resolve against it. */
static void export_library_symbols(void)
{
    Dl_info info;
    if (dladdr((void *)export_library_symbols, &info) && info.dli_fname)
        (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL);
}

PyMODINIT_FUNC PyInit__strata(void);
PyMODINIT_FUNC PyInit__strata(void)
{
    PyObject *m = PyModule_Create(&module_def);
#ifdef STRATA_PYTHON_MPI
    const long has_mpi = 1;
#else
    const long has_mpi = 0;
#endif
    if (!m || PyModule_AddFunctions(m, pys_mpi_methods) < 0 || PyModule_AddIntConstant(m, "has_mpi", has_mpi) < 0) {
        Py_XDECREF(m);
        return NULL;
    }
    if (!(pys.Worker = make_type(m, &pys_worker_spec, "Worker")) ||
        !(pys.Orch = make_type(m, &pys_orch_spec, "Orchestrator")) ||
        !(pys.Scope = make_type(m, &pys_scope_spec, "_Scope")) ||
        !(pys.TaskArgs = make_type(m, &pys_taskargs_spec, "TaskArgs")) ||
        !(pys.Tensor = make_type(m, &pys_tensor_spec, "Tensor")) ||
        !(pys.HostBuffer = make_type(m, &pys_hostbuf_spec, "HostBuffer")) ||
        !(pys.ChipBuffer = make_type(m, &pys_chipbuf_spec, "ChipBuffer")) ||
        !(pys.SubArgs = make_type(m, &pys_subargs_spec, "SubArgs")) ||
        !(pys.Handle = make_type(m, &pys_handle_spec, "CallableHandle")) || add_errors(m) < 0 ||
        add_constants(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    export_library_symbols();
    PyObject *r = mod_set_hooks(m, Py_True);
    if (!r) {
        Py_DECREF(m);
        return NULL;
    }
    Py_DECREF(r);
    return m;
}
