/* SUB functions written in Python.
 *
 * Every SUB handle's ctx points to a record the SUB children can read:
 *   - registered before init: a record in this process's memory holding the
 *     function object itself. Every child is forked (by the spawner, from the
 *     image of init) after it exists, so the pointer is valid there too.
 *   - registered after init: a record in the worker's shared heap holding the
 *     function serialised by strata._runtime.dump_function. Children running
 *     already, and children started later, load it at its first call and keep
 *     it (a per-child cache keyed by the record).
 * The trampoline takes the GIL (the fork hooks left it free in the child),
 * calls strata._runtime.sub_call, and turns an exception into the task's
 * failure with its traceback as the message (strata_task_error). */
#include "pystrata.h"

#include <stdlib.h>
#include <string.h>

enum { RECORD_LOCAL = 0x53554231u /* "SUB1" */, RECORD_BLOB = 0x53554232u /* "SUB2" */ };

typedef struct sub_record {
    uint32_t magic;
    uint32_t pad;
    uint64_t len;        /* RECORD_BLOB: bytes of data */
    PyObject *fn;        /* RECORD_LOCAL: borrowed; the handle (in the worker's handles) holds it, and
                            the children use their own copy of the process image */
    unsigned char data[];
} sub_record;

/* "module.qualname" of fn, the name its tasks carry in traces and death
   messages; NULL (no error set) when it has none. Malloc'd. */
static char *sub_name(PyObject *fn)
{
    PyObject *mod = PyObject_GetAttrString(fn, "__module__");
    PyObject *qual = mod ? PyObject_GetAttrString(fn, "__qualname__") : NULL;
    PyObject *mb = mod && PyUnicode_Check(mod) ? PyUnicode_AsUTF8String(mod) : NULL;
    PyObject *qb = qual && PyUnicode_Check(qual) ? PyUnicode_AsUTF8String(qual) : NULL;
    const char *m = mb ? PyBytes_AsString(mb) : NULL, *q = qb ? PyBytes_AsString(qb) : NULL;
    char *name = NULL;
    if (m && q && (name = malloc(strlen(m) + strlen(q) + 2)) != NULL)
        sprintf(name, "%s.%s", m, q);
    Py_XDECREF(mb);
    Py_XDECREF(qb);
    Py_XDECREF(mod);
    Py_XDECREF(qual);
    PyErr_Clear();
    return name;
}

int pys_sub_register(pys_worker *w, PyObject *fn, PyObject *blob, uint32_t *out)
{
    if (!PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "a SUB callable must be callable, not %s", pys_tname(fn));
        return -1;
    }
    sub_record *rec;
    if (blob == Py_None) {
        rec = malloc(sizeof *rec);
        if (!rec) {
            PyErr_NoMemory();
            return -1;
        }
        rec->magic = RECORD_LOCAL;
        rec->len = 0;
        rec->fn = fn;
    } else {
        char *bytes;
        Py_ssize_t n;
        if (PyBytes_AsStringAndSize(blob, &bytes, &n) < 0)
            return -1;
        void *p;
        int rc = strata_worker_host_alloc(w->w, sizeof *rec + (uint64_t)n, &p);
        if (rc != STRATA_OK) {
            pys_raise(rc, NULL);
            return -1;
        }
        rec = p;
        rec->magic = RECORD_BLOB;
        rec->len = (uint64_t)n;
        rec->fn = NULL;
        memcpy(rec->data, bytes, (size_t)n);
    }
    strata_handle h;
    int rc;
    char *name = sub_name(fn);
    PYS_RELEASE_GIL(w)
    rc = name ? strata_worker_register_sub_named(w->w, name, pys_sub_trampoline, rec, &h)
              : strata_worker_register_sub(w->w, pys_sub_trampoline, rec, &h);
    PYS_ACQUIRE_GIL(w)
    free(name);
    if (rc != STRATA_OK) {
        pys_raise(rc, NULL);
        return -1;   /* the record stays: a child may hold the pointer */
    }
    *out = h;
    return 0;
}

/* ---- SubArgs: what a SUB function receives ---- */

typedef struct pys_subargs {
    PyObject_HEAD
    const strata_task_args *a;   /* valid during the call only */
} pys_subargs;

static int sa_live(pys_subargs *s)
{
    if (!s->a) {
        pys_raise(STRATA_ESTATE, "these SUB task arguments belong to a call that has returned");
        return -1;
    }
    return 0;
}

static int sa_index(pys_subargs *s, PyObject *o, uint32_t n, const char *what, uint32_t *out)
{
    return sa_live(s) < 0 ? -1 : pys_index_arg(o, n, what, out);
}

/* The runtime's functions a SUB child calls for every task, looked up once. */
static PyObject *make_array, *make_view, *sub_call, *load_function;

static PyObject *cached(PyObject **slot, const char *name)
{
    if (!*slot)
        *slot = pys_runtime_attr(name);
    return *slot;
}

/* Call strata._runtime.<maker>(memoryview, c_dtype, shape, strides|None, offset). */
static PyObject *tensor_object(pys_subargs *s, uint32_t i, PyObject **slot, const char *maker)
{
    const strata_tensor *t = &s->a->tensors[i];
    PyObject *f = cached(slot, maker);
    if (!f)
        return NULL;
    PyObject *mv = PyMemoryView_FromMemory((char *)(uintptr_t)t->addr, (Py_ssize_t)t->nbytes, PyBUF_WRITE);
    PyObject *shape = PyTuple_New(t->ndims);
    bool contiguous = true;
    for (uint32_t d = 0; d < t->ndims; d++)
        contiguous &= t->strides[d] == 0;
    PyObject *strides = contiguous ? Py_NewRef(Py_None) : PyTuple_New(t->ndims);
    PyObject *r = NULL;
    if (!mv || !shape || !strides)
        goto out;
    for (uint32_t d = 0; d < t->ndims; d++) {
        PyObject *x = PyLong_FromUnsignedLongLong(t->shape[d]);
        PyObject *y = contiguous ? NULL : PyLong_FromLongLong(t->strides[d]);
        if (!x || (!contiguous && !y)) {
            Py_XDECREF(x);
            goto out;
        }
        PyTuple_SetItem(shape, d, x);
        if (!contiguous)
            PyTuple_SetItem(strides, d, y);
    }
    r = PyObject_CallFunction(f, "OiOOK", mv, (int)t->dtype, shape, strides, (unsigned long long)t->offset);
out:
    Py_XDECREF(mv);
    Py_XDECREF(shape);
    Py_XDECREF(strides);
    return r;
}

static PyObject *sa_tensor(PyObject *self, PyObject *i)
{
    pys_subargs *s = (pys_subargs *)self;
    uint32_t k;
    if (sa_index(s, i, s->a ? s->a->ntensors : 0, "tensor", &k) < 0)
        return NULL;
    return tensor_object(s, k, &make_array, "make_array");
}

static PyObject *sa_item(PyObject *self, Py_ssize_t i)
{
    pys_subargs *s = (pys_subargs *)self;
    if (sa_live(s) < 0)
        return NULL;
    if (i < 0 || (uint64_t)i >= s->a->ntensors) {
        PyErr_Format(PyExc_IndexError, "tensor index out of range (%u tensors)", s->a->ntensors);
        return NULL;
    }
    return tensor_object(s, (uint32_t)i, &make_view, "make_view");
}

static PyObject *sa_scalar(PyObject *self, PyObject *i)
{
    pys_subargs *s = (pys_subargs *)self;
    uint32_t k;
    if (sa_index(s, i, s->a ? s->a->nscalars : 0, "scalar", &k) < 0)
        return NULL;
    return PyLong_FromUnsignedLongLong(s->a->scalars[k]);
}

static PyObject *sa_tag(PyObject *self, PyObject *i)
{
    pys_subargs *s = (pys_subargs *)self;
    uint32_t k;
    if (sa_index(s, i, s->a ? s->a->ntensors : 0, "tensor", &k) < 0)
        return NULL;
    return PyLong_FromLong(s->a->tags ? (long)s->a->tags[k] : 0);
}

static PyObject *sa_tensor_count(PyObject *self, PyObject *unused)
{
    (void)unused;
    pys_subargs *s = (pys_subargs *)self;
    return sa_live(s) < 0 ? NULL : PyLong_FromUnsignedLong(s->a->ntensors);
}

static PyObject *sa_scalar_count(PyObject *self, PyObject *unused)
{
    (void)unused;
    pys_subargs *s = (pys_subargs *)self;
    return sa_live(s) < 0 ? NULL : PyLong_FromUnsignedLong(s->a->nscalars);
}

static Py_ssize_t sa_len(PyObject *self)
{
    pys_subargs *s = (pys_subargs *)self;
    return s->a ? (Py_ssize_t)s->a->ntensors : 0;
}

static void sa_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    ((freefunc)PyType_GetSlot(tp, Py_tp_free))(self);
    Py_DECREF(tp);
}

static PyMethodDef sa_methods[] = {
    {"tensor", sa_tensor, METH_O, "tensor(i): a numpy array over tensor i's shared memory (no copy)."},
    {"scalar", sa_scalar, METH_O, "scalar(i): scalar i as an unsigned 64-bit int."},
    {"tag", sa_tag, METH_O, "tag(i): the tag of tensor i, as an int."},
    {"tensor_count", sa_tensor_count, METH_NOARGS, NULL},
    {"scalar_count", sa_scalar_count, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot sa_slots[] = {
    {Py_tp_dealloc, sa_dealloc},
    {Py_tp_methods, sa_methods},
    {Py_sq_length, sa_len},
    {Py_sq_item, sa_item},
    {Py_tp_doc, "A SUB task's arguments: tensor(i) is a numpy array over shared memory; args[i] a view "
                "with .buffer, .shapes, .dtype."},
    {0, NULL},
};
PyType_Spec pys_subargs_spec = {"strata.SubArgs", sizeof(pys_subargs), 0, Py_TPFLAGS_DEFAULT, sa_slots};

/* ---- the trampoline (runs in a SUB child) ---- */

static PyObject *loaded;   /* dict: record address -> function loaded from a blob */

static PyObject *function_of(sub_record *rec)
{
    if (rec->magic == RECORD_LOCAL)
        return Py_NewRef(rec->fn);
    if (rec->magic != RECORD_BLOB) {
        pys_raise(STRATA_EINVAL, "a SUB handle's record is damaged (bad magic)");
        return NULL;
    }
    if (!loaded && !(loaded = PyDict_New()))
        return NULL;
    PyObject *key = PyLong_FromVoidPtr(rec);
    if (!key)
        return NULL;
    PyObject *fn = PyDict_GetItemWithError(loaded, key);
    if (fn) {
        Py_DECREF(key);
        return Py_NewRef(fn);
    }
    PyObject *load = cached(&load_function, "load_function");
    PyObject *bytes = load ? PyBytes_FromStringAndSize((const char *)rec->data, (Py_ssize_t)rec->len) : NULL;
    fn = bytes ? PyObject_CallFunctionObjArgs(load, bytes, NULL) : NULL;
    Py_XDECREF(bytes);
    if (fn && PyDict_SetItem(loaded, key, fn) < 0)
        Py_CLEAR(fn);
    Py_DECREF(key);
    return fn;
}

int pys_sub_trampoline(const strata_task_args *args, void *ctx)
{
    PyGILState_STATE g = PyGILState_Ensure();
    int rc = STRATA_OK;
    PyObject *fn = function_of(ctx);
    PyObject *call = cached(&sub_call, "sub_call");
    pys_subargs *sa = (fn && call) ? PyObject_New(pys_subargs, pys.SubArgs) : NULL;
    PyObject *text = NULL;
    if (sa) {
        sa->a = args;
        text = PyObject_CallFunctionObjArgs(call, fn, (PyObject *)sa, NULL);
        sa->a = NULL;
        Py_DECREF(sa);
    }
    if (!text) {
        /* the machinery failed (not the function: sub_call catches its errors) */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyObject *s = value ? PyObject_Str(value) : NULL;
        const char *msg = s ? PyUnicode_AsUTF8AndSize(s, NULL) : NULL;
        rc = strata_task_error("the Python SUB function could not be called: %s", msg ? msg : "unknown error");
        Py_XDECREF(s);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        PyErr_Clear();
    } else if (text != Py_None) {
        const char *msg = PyUnicode_AsUTF8AndSize(text, NULL);
        rc = strata_task_error("%s", msg ? msg : "the SUB function raised");
        PyErr_Clear();
    }
    Py_XDECREF(text);
    Py_XDECREF(fn);
    PyGILState_Release(g);
    return rc;
}
