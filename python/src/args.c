/* TaskArgs, Tensor, dtypes and tags, and the registry of host memory Strata
 * knows (so that a numpy array is turned into a tensor naming its buffer's
 * base, as the C contract asks). */
#include "pystrata.h"

#include <string.h>

/* ---- dtypes: the followed runtime's DataType values -> the C dtypes ---- */

enum { DT_UNSUPPORTED = -2 };
static const int datatype_to_c[] = {
    [0] = STRATA_F32,  [1] = STRATA_F16,  [2] = STRATA_I32,  [3] = STRATA_I16,
    [4] = STRATA_I8,   [5] = STRATA_U8,   [6] = STRATA_BF16, [7] = STRATA_I64,
    [8] = STRATA_U64,  [9] = STRATA_U16,  [10] = STRATA_U32, [11] = STRATA_U8,   /* BOOL: one byte */
    [12] = DT_UNSUPPORTED, [13] = DT_UNSUPPORTED, [14] = DT_UNSUPPORTED,         /* FP8, FP4 */
    [15] = STRATA_F64,
};
#define NDATATYPES (int)(sizeof datatype_to_c / sizeof datatype_to_c[0])

int pys_dtype_from(PyObject *o)
{
    PyObject *code = NULL;
    if (!PyLong_Check(o)) {
        /* a str, a numpy dtype or type: strata._runtime knows the names */
        PyObject *f = pys_runtime_attr("datatype_of");
        if (!f)
            return -1;
        code = PyObject_CallFunctionObjArgs(f, o, NULL);
        Py_DECREF(f);
        if (!code)
            return -1;
        o = code;
    }
    long v = PyLong_AsLong(o);
    Py_XDECREF(code);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < 0 || v >= NDATATYPES) {
        pys_raisef(STRATA_EINVAL, "dtype %ld is no DataType (0..%d)", v, NDATATYPES - 1);
        return -1;
    }
    if (datatype_to_c[v] == DT_UNSUPPORTED) {
        pys_raisef(STRATA_EINVAL,
                   "DataType %ld (an 8- or 4-bit float) has no C dtype in this version of Strata; "
                   "store it as UINT8", v);
        return -1;
    }
    return datatype_to_c[v];
}

/* The DataType value for a C dtype (the reverse of the table above). */
static int datatype_of_c(int c)
{
    for (int v = 0; v < NDATATYPES; v++)
        if (datatype_to_c[v] == c && v != 11)
            return v;
    return -1;
}

int pys_tag_from(PyObject *o)
{
    long v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "a tag must be a TensorArgType, not %s", pys_tname(o));
        }
        return -1;
    }
    if (v < STRATA_INPUT || v > STRATA_NO_DEP) {
        pys_raisef(STRATA_EINVAL, "tag %ld is no TensorArgType (INPUT=0 .. NO_DEP=4)", v);
        return -1;
    }
    return (int)v;
}

/* The C dtype of a buffer format ("f", "<i8", "?"), or -1. */
static int dtype_of_format(const char *fmt, Py_ssize_t itemsize)
{
    if (!fmt)
        return STRATA_U8;
    while (*fmt == '@' || *fmt == '=' || *fmt == '<' || *fmt == '>' || *fmt == '!')
        fmt++;
    if (fmt[0] == '\0' || fmt[1] != '\0')
        return -1;
    switch (fmt[0]) {
    case 'f': return itemsize == 4 ? STRATA_F32 : -1;
    case 'd': return itemsize == 8 ? STRATA_F64 : -1;
    case 'e': return itemsize == 2 ? STRATA_F16 : -1;
    case '?': return STRATA_U8;
    case 'b': case 'h': case 'i': case 'l': case 'q':
        return itemsize == 1 ? STRATA_I8 : itemsize == 2 ? STRATA_I16 : itemsize == 4 ? STRATA_I32
             : itemsize == 8 ? STRATA_I64 : -1;
    case 'B': case 'H': case 'I': case 'L': case 'Q':
        return itemsize == 1 ? STRATA_U8 : itemsize == 2 ? STRATA_U16 : itemsize == 4 ? STRATA_U32
             : itemsize == 8 ? STRATA_U64 : -1;
    default: return -1;
    }
}

/* ---- host memory Strata knows: live workers' shared-heap allocations ---- */

typedef struct known_buf {
    uint64_t base, nbytes;
    PyObject *owner;   /* borrowed: the HostBuffer removes itself before it dies */
} known_buf;
static known_buf *known;
static size_t nknown, capknown;

static size_t known_lower_bound(uint64_t base)
{
    size_t lo = 0, hi = nknown;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (known[mid].base < base)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int pys_known_add(uint64_t base, uint64_t nbytes, PyObject *owner)
{
    if (nknown == capknown) {
        size_t cap = capknown ? capknown * 2 : 64;
        known_buf *k = PyMem_Realloc(known, cap * sizeof *k);
        if (!k) {
            PyErr_NoMemory();
            return -1;
        }
        known = k;
        capknown = cap;
    }
    size_t i = known_lower_bound(base);
    memmove(&known[i + 1], &known[i], (nknown - i) * sizeof *known);
    known[i] = (known_buf){base, nbytes, owner};
    nknown++;
    return 0;
}

void pys_known_remove(uint64_t base, const PyObject *owner)
{
    for (size_t i = known_lower_bound(base); i < nknown && known[i].base == base; i++)
        if (known[i].owner == owner) {
            memmove(&known[i], &known[i + 1], (nknown - i - 1) * sizeof *known);
            nknown--;
            return;
        }
}

bool pys_known_find(uint64_t p, uint64_t n, uint64_t *base, uint64_t *nbytes, PyObject **owner)
{
    size_t i = known_lower_bound(p + 1);   /* first base > p */
    if (i == 0)
        return false;
    known_buf *k = &known[i - 1];
    if (p < k->base || p + n > k->base + k->nbytes)
        return false;
    *base = k->base;
    *nbytes = k->nbytes;
    *owner = k->owner;
    return true;
}

/* ---- tensors ---- */

static int tensor_from_buffer(PyObject *obj, strata_tensor *out)
{
    Py_buffer v;
    if (PyObject_GetBuffer(obj, &v, PyBUF_RECORDS_RO) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError,
                     "a tensor argument must be a Tensor (buf.tensor(...)), a numpy array in Strata's shared memory "
                     "(Worker.host_empty) or an object with the buffer protocol over it, not %s",
                     pys_tname(obj));
        return -1;
    }
    int rc = -1;
    int dt = dtype_of_format(v.format, v.itemsize);
    if (dt < 0) {
        pys_raisef(STRATA_EINVAL, "an array of format '%s' has no Strata dtype", v.format ? v.format : "?");
        goto out;
    }
    if (v.ndim > STRATA_MAX_DIMS) {
        pys_raisef(STRATA_EINVAL, "an array of %d dimensions: Strata takes at most %d", v.ndim, STRATA_MAX_DIMS);
        goto out;
    }
    strata_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = (strata_dtype)dt;
    t.ndims = v.ndim ? (uint32_t)v.ndim : 1;
    bool contiguous = true;
    int64_t expect = 1;
    uint64_t lo = (uint64_t)(uintptr_t)v.buf, span = (uint64_t)v.itemsize;
    for (int d = v.ndim - 1; d >= 0; d--) {
        Py_ssize_t s = v.strides ? v.strides[d] : expect * v.itemsize;
        if (v.shape[d] == 0) {
            pys_raisef(STRATA_EINVAL, "dimension %d of the array is empty: every dimension needs an element", d);
            goto out;
        }
        if (s < 0 || s % v.itemsize != 0) {
            pys_raisef(STRATA_EINVAL,
                       "dimension %d of the array has stride %zd bytes: Strata takes non-negative strides in whole "
                       "elements (%zd bytes)", d, s, v.itemsize);
            goto out;
        }
        t.shape[d] = (uint64_t)v.shape[d];
        t.strides[d] = s / v.itemsize;
        if (v.shape[d] > 1 && t.strides[d] != expect)
            contiguous = false;
        expect *= v.shape[d];
        span += (uint64_t)(v.shape[d] - 1) * (uint64_t)s;
    }
    if (v.ndim == 0)
        t.shape[0] = 1;
    if (contiguous)
        memset(t.strides, 0, sizeof t.strides);
    uint64_t base, nbytes;
    PyObject *owner;
    if (!pys_known_find(lo, span, &base, &nbytes, &owner)) {
        pys_raisef(STRATA_EINVAL,
                   "this array's memory (0x%llx, %llu bytes) is not in a live worker's shared heap: tasks see only "
                   "memory from Worker.host_alloc/host_empty (or chip buffers from Worker.malloc)",
                   (unsigned long long)lo, (unsigned long long)span);
        goto out;
    }
    if ((lo - base) % (uint64_t)v.itemsize != 0) {
        pys_raisef(STRATA_EINVAL, "this array starts %llu bytes into its buffer, not a whole number of elements",
                   (unsigned long long)(lo - base));
        goto out;
    }
    t.addr = base;
    t.nbytes = nbytes;
    t.offset = (lo - base) / (uint64_t)v.itemsize;
    *out = t;
    rc = 0;
out:
    PyBuffer_Release(&v);
    return rc;
}

int pys_tensor_from(PyObject *obj, strata_tensor *out, PyObject **owner)
{
    if (Py_IS_TYPE(obj, pys.Tensor)) {
        *out = ((pys_tensor *)obj)->t;
    } else if (!PyObject_CheckBuffer(obj) && PyObject_HasAttrString(obj, "__dlpack__")) {
        /* DLPack (a torch CPU tensor, say): a numpy array over the same memory
           (no copy), which also keeps the producer alive. */
        PyObject *f = pys_runtime_attr("as_host_array");
        PyObject *arr = f ? PyObject_CallFunctionObjArgs(f, obj, NULL) : NULL;
        Py_XDECREF(f);
        if (!arr)
            return -1;
        if (tensor_from_buffer(arr, out) < 0) {
            Py_DECREF(arr);
            return -1;
        }
        *owner = arr;
        return 0;
    } else if (tensor_from_buffer(obj, out) < 0) {
        return -1;
    }
    *owner = Py_NewRef(obj);
    return 0;
}

static int tensor_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(((pys_tensor *)self)->owner);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int tensor_clear(PyObject *self)
{
    Py_CLEAR(((pys_tensor *)self)->owner);
    return 0;
}

static void tensor_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Py_XDECREF(((pys_tensor *)self)->owner);
    ((freefunc)PyType_GetSlot(tp, Py_tp_free))(self);
    Py_DECREF(tp);
}

static const char *strata_dtype_name(strata_dtype d)
{
    static const char *const names[] = {"UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32",
                                        "UINT64", "INT64", "FLOAT16", "BFLOAT16", "FLOAT32", "FLOAT64"};
    return (unsigned)d < sizeof names / sizeof names[0] ? names[d] : "?";
}

static PyObject *u64_tuple(const uint64_t *v, uint32_t n)
{
    PyObject *t = PyTuple_New(n);
    for (uint32_t i = 0; t && i < n; i++) {
        PyObject *x = PyLong_FromUnsignedLongLong(v[i]);
        if (!x) {
            Py_CLEAR(t);
            break;
        }
        PyTuple_SetItem(t, (Py_ssize_t)i, x);
    }
    return t;
}

static PyObject *tensor_get_shape(PyObject *self, void *c)
{
    (void)c;
    pys_tensor *t = (pys_tensor *)self;
    return u64_tuple(t->t.shape, t->t.ndims);
}

static PyObject *tensor_get_strides(PyObject *self, void *c)
{
    (void)c;
    pys_tensor *t = (pys_tensor *)self;
    PyObject *r = PyTuple_New(t->t.ndims);
    bool contiguous = true;
    for (uint32_t d = 0; d < t->t.ndims; d++)
        contiguous &= t->t.strides[d] == 0;
    int64_t e = 1;
    for (int d = (int)t->t.ndims - 1; r && d >= 0; d--) {
        PyObject *x = PyLong_FromLongLong(contiguous ? e : t->t.strides[d]);
        if (!x) {
            Py_CLEAR(r);
            break;
        }
        PyTuple_SetItem(r, d, x);
        e *= (int64_t)t->t.shape[d];
    }
    return r;
}

static PyObject *tensor_get_dtype(PyObject *self, void *c)
{
    (void)c;
    PyObject *f = pys_runtime_attr("DataType");
    if (!f)
        return NULL;
    PyObject *r = PyObject_CallFunction(f, "i", datatype_of_c(((pys_tensor *)self)->t.dtype));
    Py_DECREF(f);
    return r;
}

static PyObject *tensor_get_u64(PyObject *self, void *c)
{
    pys_tensor *t = (pys_tensor *)self;
    uint64_t v = c == (void *)0 ? t->t.addr : c == (void *)1 ? t->t.nbytes : t->t.offset;
    return PyLong_FromUnsignedLongLong(v);
}

static PyObject *tensor_repr(PyObject *self)
{
    pys_tensor *t = (pys_tensor *)self;
    char buf[256];
    int len = snprintf(buf, sizeof buf, "<strata.Tensor base=0x%llx offset=%llu shape=(", (unsigned long long)t->t.addr,
                       (unsigned long long)t->t.offset);
    for (uint32_t d = 0; d < t->t.ndims && len < (int)sizeof buf - 32; d++)
        len += snprintf(buf + len, sizeof buf - (size_t)len, "%s%llu", d ? ", " : "",
                        (unsigned long long)t->t.shape[d]);
    snprintf(buf + len, sizeof buf - (size_t)len, "%s) dtype=%s>", t->t.ndims == 1 ? "," : "",
             strata_dtype_name(t->t.dtype));
    return PyUnicode_FromString(buf);
}

static PyGetSetDef tensor_getset[] = {
    {"shape", tensor_get_shape, NULL, "Elements per dimension.", NULL},
    {"shapes", tensor_get_shape, NULL, "The followed runtime's name for shape.", NULL},
    {"strides", tensor_get_strides, NULL, "Elements between neighbours, per dimension.", NULL},
    {"dtype", tensor_get_dtype, NULL, "The DataType.", NULL},
    {"base", tensor_get_u64, NULL, "The base address of the buffer the view lies in.", (void *)0},
    {"buffer_nbytes", tensor_get_u64, NULL, "The size of that buffer, bytes.", (void *)1},
    {"offset", tensor_get_u64, NULL, "Elements from the base to the view's first element.", (void *)2},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot tensor_slots[] = {
    {Py_tp_dealloc, tensor_dealloc},
    {Py_tp_traverse, tensor_traverse},
    {Py_tp_clear, tensor_clear},
    {Py_tp_getset, tensor_getset},
    {Py_tp_repr, tensor_repr},
    {Py_tp_doc, "A view (shape, dtype, strides, offset) of a chip or host buffer; made by buf.tensor(...)."},
    {0, NULL},
};
PyType_Spec pys_tensor_spec = {"strata.Tensor", sizeof(pys_tensor), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
                                tensor_slots};

/* buf.tensor(shape, dtype, strides=None, offset=0, *, shapes=None, byte_offset=None) */
PyObject *pys_make_view(PyObject *owner, uint64_t base, uint64_t nbytes, PyObject *const *args, Py_ssize_t nargs,
                        PyObject *kwnames)
{
    static const char *const names[] = {"shape", "dtype", "strides", "offset", "shapes", "byte_offset", NULL};
    PyObject *a[6];
    if (pys_parse("tensor", args, nargs, kwnames, names, 0, 4, a) < 0)
        return NULL;
    PyObject *shape = a[0] ? a[0] : a[4];
    if (!shape || (a[0] && a[4])) {
        PyErr_SetString(PyExc_TypeError, "tensor() takes the shape once: shape= (or shapes=)");
        return NULL;
    }
    if (!a[1]) {
        PyErr_SetString(PyExc_TypeError, "tensor() missing required argument 'dtype'");
        return NULL;
    }
    int dt = pys_dtype_from(a[1]);
    if (dt < 0)
        return NULL;
    strata_tensor t;
    memset(&t, 0, sizeof t);
    t.addr = base;
    t.nbytes = nbytes;
    t.dtype = (strata_dtype)dt;
    PyObject *seq = PySequence_Tuple(shape);
    if (!seq)
        return NULL;
    Py_ssize_t nd = PyTuple_Size(seq);
    if (nd < 1 || nd > STRATA_MAX_DIMS) {
        Py_DECREF(seq);
        return pys_raisef(STRATA_EINVAL, "a shape of %zd dimensions: Strata takes 1 to %d", nd, STRATA_MAX_DIMS);
    }
    t.ndims = (uint32_t)nd;
    for (Py_ssize_t d = 0; d < nd; d++)
        if (pys_u64(PyTuple_GetItem(seq, d), "a shape entry", &t.shape[d]) < 0) {
            Py_DECREF(seq);
            return NULL;
        }
    Py_DECREF(seq);
    if (a[2] && a[2] != Py_None) {
        PyObject *st = PySequence_Tuple(a[2]);
        if (!st)
            return NULL;
        if (PyTuple_Size(st) != nd) {
            Py_DECREF(st);
            return pys_raisef(STRATA_EINVAL, "strides has %zd entries for a shape of %zd", PyTuple_Size(st), nd);
        }
        for (Py_ssize_t d = 0; d < nd; d++) {
            long long s = PyLong_AsLongLong(PyTuple_GetItem(st, d));
            if (s == -1 && PyErr_Occurred()) {
                Py_DECREF(st);
                return NULL;
            }
            t.strides[d] = s;
        }
        Py_DECREF(st);
    }
    uint64_t esize = strata_dtype_size(t.dtype);
    if (a[3] && a[3] != Py_None && pys_u64(a[3], "offset", &t.offset) < 0)
        return NULL;
    if (a[5] && a[5] != Py_None) {
        uint64_t bo;
        if (pys_u64(a[5], "byte_offset", &bo) < 0)
            return NULL;
        if (bo % esize)
            return pys_raisef(STRATA_EINVAL, "byte_offset %llu is not a whole number of %llu-byte elements",
                              (unsigned long long)bo, (unsigned long long)esize);
        t.offset += bo / esize;
    }
    /* The extent check the library makes at submit, made here too so the
       error comes where the view is made. */
    uint64_t last = t.offset;
    bool contiguous = true;
    for (uint32_t d = 0; d < t.ndims; d++)
        contiguous &= t.strides[d] == 0;
    uint64_t e = 1;
    for (int d = (int)t.ndims - 1; d >= 0; d--) {
        if (t.shape[d] == 0)
            return pys_raisef(STRATA_EINVAL, "dimension %d of the shape is 0: every dimension needs an element", d);
        if (t.strides[d] < 0)
            return pys_raisef(STRATA_EINVAL, "stride %d is negative", d);
        uint64_t step = contiguous ? e : (uint64_t)t.strides[d], span;
        if (__builtin_mul_overflow(t.shape[d] - 1, step, &span) || __builtin_add_overflow(last, span, &last) ||
            __builtin_mul_overflow(e, t.shape[d], &e))
            return pys_raise(STRATA_EINVAL, "the view's extent overflows 64 bits: shape or strides too large");
    }
    uint64_t end_byte;
    if (__builtin_mul_overflow(last + 1, esize, &end_byte) || end_byte > nbytes)
        return pys_raisef(STRATA_EINVAL,
                          "the view ends at byte %llu of a %llu-byte buffer: shape, strides or offset too large",
                          (unsigned long long)end_byte, (unsigned long long)nbytes);
    pys_tensor *r = PyObject_GC_New(pys_tensor, pys.Tensor);
    if (!r)
        return NULL;
    r->t = t;
    r->owner = Py_NewRef(owner);
    PyObject_GC_Track(r);
    return (PyObject *)r;
}

/* ---- TaskArgs ---- */

static int grow_tensors(pys_taskargs *a)
{
    uint32_t cap = a->cap_tensors ? a->cap_tensors * 2 : 4;
    if (cap > STRATA_MAX_TASK_TENSORS)
        cap = STRATA_MAX_TASK_TENSORS;
    strata_tensor *t = PyMem_Realloc(a->tensors, cap * sizeof *t);
    if (t)
        a->tensors = t;
    strata_tag *g = t ? PyMem_Realloc(a->tags, cap * sizeof *g) : NULL;
    if (g)
        a->tags = g;
    PyObject **o = g ? PyMem_Realloc(a->owners, cap * sizeof *o) : NULL;
    if (!o) {
        PyErr_NoMemory();
        return -1;
    }
    a->owners = o;
    a->cap_tensors = cap;
    return 0;
}

static int ta_changeable(pys_taskargs *a)
{
    if (a->in_use) {
        pys_raise(STRATA_ESTATE, "this TaskArgs is being read by a submit or run in flight on another thread; "
                                 "change it after that call returns (or use another TaskArgs)");
        return -1;
    }
    return 0;
}

static PyObject *ta_add_tensor(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    pys_taskargs *a = (pys_taskargs *)self;
    if (ta_changeable(a) < 0)
        return NULL;
    PyObject *t = NULL, *tag = NULL;
    if (!kwnames && (nargs == 1 || nargs == 2)) {   /* the fast path */
        t = args[0];
        tag = nargs == 2 ? args[1] : NULL;
    } else {
        static const char *const names[] = {"tensor", "tag", NULL};
        PyObject *o[2];
        if (pys_parse("add_tensor", args, nargs, kwnames, names, 1, 2, o) < 0)
            return NULL;
        t = o[0];
        tag = o[1];
    }
    int g = STRATA_INPUT;
    if (tag && (g = pys_tag_from(tag)) < 0)
        return NULL;
    if (a->ntensors == STRATA_MAX_TASK_TENSORS)
        return pys_raisef(STRATA_EINVAL, "a task takes at most %d tensors", STRATA_MAX_TASK_TENSORS);
    if (a->ntensors == a->cap_tensors && grow_tensors(a) < 0)
        return NULL;
    PyObject *owner;
    if (pys_tensor_from(t, &a->tensors[a->ntensors], &owner) < 0)
        return NULL;
    a->tags[a->ntensors] = (strata_tag)g;
    a->owners[a->ntensors] = owner;
    a->ntensors++;
    Py_RETURN_NONE;
}

static PyObject *ta_add_scalar(PyObject *self, PyObject *v)
{
    pys_taskargs *a = (pys_taskargs *)self;
    if (ta_changeable(a) < 0)
        return NULL;
    uint64_t x;
    if (PyFloat_Check(v)) {
        double d = PyFloat_AsDouble(v);   /* a float travels as its IEEE bits */
        memcpy(&x, &d, sizeof x);
    } else if (PyBool_Check(v) || PyLong_Check(v)) {
        if (pys_u64(v, "a scalar", &x) < 0)
            return NULL;
    } else {
        PyObject *i = PyNumber_Index(v);   /* numpy integers */
        if (!i) {
            PyErr_Format(PyExc_TypeError, "a scalar must be an int or a float, not %s", pys_tname(v));
            return NULL;
        }
        int rc = pys_u64(i, "a scalar", &x);
        Py_DECREF(i);
        if (rc < 0)
            return NULL;
    }
    if (a->nscalars == STRATA_MAX_TASK_SCALARS)
        return pys_raisef(STRATA_EINVAL, "a task takes at most %d scalars", STRATA_MAX_TASK_SCALARS);
    if (a->nscalars == a->cap_scalars) {
        uint32_t cap = a->cap_scalars ? a->cap_scalars * 2 : 4;
        uint64_t *s = PyMem_Realloc(a->scalars, cap * sizeof *s);
        if (!s)
            return PyErr_NoMemory();
        a->scalars = s;
        a->cap_scalars = cap;
    }
    a->scalars[a->nscalars++] = x;
    Py_RETURN_NONE;
}

int pys_index_arg(PyObject *o, uint32_t n, const char *what, uint32_t *out)
{
    Py_ssize_t i = PyNumber_AsSsize_t(o, PyExc_IndexError);
    if (i == -1 && PyErr_Occurred())
        return -1;
    if (i < 0)
        i += n;
    if (i < 0 || (uint64_t)i >= n) {
        PyErr_Format(PyExc_IndexError, "%s index out of range (%u %ss)", what, n, what);
        return -1;
    }
    *out = (uint32_t)i;
    return 0;
}

static PyObject *ta_tensor(PyObject *self, PyObject *i)
{
    pys_taskargs *a = (pys_taskargs *)self;
    uint32_t k;
    if (pys_index_arg(i, a->ntensors, "tensor", &k) < 0)
        return NULL;
    PyObject *o = a->owners[k];
    if (o && Py_IS_TYPE(o, pys.Tensor))
        return Py_NewRef(o);
    return Py_NewRef(o ? o : Py_None);
}

static PyObject *ta_scalar(PyObject *self, PyObject *i)
{
    pys_taskargs *a = (pys_taskargs *)self;
    uint32_t k;
    if (pys_index_arg(i, a->nscalars, "scalar", &k) < 0)
        return NULL;
    return PyLong_FromUnsignedLongLong(a->scalars[k]);
}

static PyObject *ta_tag(PyObject *self, PyObject *i)
{
    pys_taskargs *a = (pys_taskargs *)self;
    uint32_t k;
    if (pys_index_arg(i, a->ntensors, "tensor", &k) < 0)
        return NULL;
    PyObject *f = pys_runtime_attr("TensorArgType");
    if (!f)
        return NULL;
    PyObject *r = PyObject_CallFunction(f, "i", (int)a->tags[k]);
    Py_DECREF(f);
    return r;
}

static PyObject *ta_set_tag(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    pys_taskargs *a = (pys_taskargs *)self;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "set_tag(i, tag) takes two arguments");
        return NULL;
    }
    uint32_t k;
    int g;
    if (ta_changeable(a) < 0 || pys_index_arg(args[0], a->ntensors, "tensor", &k) < 0 || (g = pys_tag_from(args[1])) < 0)
        return NULL;
    a->tags[k] = (strata_tag)g;
    Py_RETURN_NONE;
}

static void ta_clear_all(pys_taskargs *a)
{
    for (uint32_t i = 0; i < a->ntensors; i++)
        Py_CLEAR(a->owners[i]);
    a->ntensors = 0;
    a->nscalars = 0;
}

static PyObject *ta_clear(PyObject *self, PyObject *unused)
{
    (void)unused;
    if (ta_changeable((pys_taskargs *)self) < 0)
        return NULL;
    ta_clear_all((pys_taskargs *)self);
    Py_RETURN_NONE;
}

static PyObject *ta_tensor_count(PyObject *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromUnsignedLong(((pys_taskargs *)self)->ntensors);
}

static PyObject *ta_scalar_count(PyObject *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromUnsignedLong(((pys_taskargs *)self)->nscalars);
}

static Py_ssize_t ta_len(PyObject *self)
{
    return ((pys_taskargs *)self)->ntensors;
}

static PyObject *ta_item(PyObject *self, Py_ssize_t i)
{
    pys_taskargs *a = (pys_taskargs *)self;
    if (i < 0 || (uint64_t)i >= a->ntensors) {
        PyErr_Format(PyExc_IndexError, "tensor index out of range (%u tensors)", a->ntensors);
        return NULL;
    }
    return Py_NewRef(a->owners[i]);
}

static int ta_traverse(PyObject *self, visitproc visit, void *arg)
{
    pys_taskargs *a = (pys_taskargs *)self;
    for (uint32_t i = 0; i < a->ntensors; i++)
        Py_VISIT(a->owners[i]);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int ta_clear_gc(PyObject *self)
{
    ta_clear_all((pys_taskargs *)self);
    return 0;
}

static void ta_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    pys_taskargs *a = (pys_taskargs *)self;
    ta_clear_all(a);
    PyMem_Free(a->tensors);
    PyMem_Free(a->tags);
    PyMem_Free(a->owners);
    PyMem_Free(a->scalars);
    ((freefunc)PyType_GetSlot(tp, Py_tp_free))(self);
    Py_DECREF(tp);
}

static PyObject *ta_new(PyTypeObject *tp, PyObject *args, PyObject *kw)
{
    if ((args && PyTuple_Size(args)) || (kw && PyDict_Size(kw))) {
        PyErr_SetString(PyExc_TypeError, "TaskArgs() takes no arguments; use add_tensor and add_scalar");
        return NULL;
    }
    pys_taskargs *a = (pys_taskargs *)((allocfunc)PyType_GetSlot(tp, Py_tp_alloc))(tp, 0);
    return (PyObject *)a;
}

static PyObject *ta_repr(PyObject *self)
{
    pys_taskargs *a = (pys_taskargs *)self;
    return PyUnicode_FromFormat("<strata.TaskArgs %u tensors, %u scalars>", a->ntensors, a->nscalars);
}

static PyMethodDef ta_methods[] = {
    {"add_tensor", (PyCFunction)(void (*)(void))ta_add_tensor, METH_FASTCALL | METH_KEYWORDS,
     "add_tensor(t, tag=TensorArgType.INPUT): a Tensor, or an array in Strata's shared memory."},
    {"add_scalar", ta_add_scalar, METH_O, "add_scalar(v): an int (64 bits) or a float (its IEEE bits)."},
    {"tensor", ta_tensor, METH_O, "tensor(i): the object added as tensor i."},
    {"scalar", ta_scalar, METH_O, "scalar(i): scalar i as an unsigned 64-bit int."},
    {"tag", ta_tag, METH_O, "tag(i): the TensorArgType of tensor i."},
    {"set_tag", (PyCFunction)(void (*)(void))ta_set_tag, METH_FASTCALL, "set_tag(i, tag)."},
    {"tensor_count", ta_tensor_count, METH_NOARGS, "The number of tensors."},
    {"scalar_count", ta_scalar_count, METH_NOARGS, "The number of scalars."},
    {"clear", ta_clear, METH_NOARGS, "Remove every tensor and scalar."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot ta_slots[] = {
    {Py_tp_new, ta_new},
    {Py_tp_dealloc, ta_dealloc},
    {Py_tp_traverse, ta_traverse},
    {Py_tp_clear, ta_clear_gc},
    {Py_tp_methods, ta_methods},
    {Py_tp_repr, ta_repr},
    {Py_sq_length, ta_len},
    {Py_sq_item, ta_item},
    {Py_tp_doc, "The arguments of one task: tagged tensors and 64-bit scalars."},
    {0, NULL},
};
PyType_Spec pys_taskargs_spec = {"strata.TaskArgs", sizeof(pys_taskargs), 0,
                                 Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, ta_slots};

int pys_taskargs_from(PyObject *o, strata_task_args *out)
{
    if (!o || o == Py_None) {
        *out = (strata_task_args){NULL, NULL, 0, NULL, 0};
        return 0;
    }
    if (!PyObject_TypeCheck(o, pys.TaskArgs)) {
        PyErr_Format(PyExc_TypeError, "args must be a TaskArgs (or None), not %s", pys_tname(o));
        return -1;
    }
    *out = pys_taskargs_view((pys_taskargs *)o);
    return 0;
}

static int cfg_field(PyObject *o, const char *name, uint64_t *out)
{
    PyObject *v = PyObject_GetAttrString(o, name);
    if (!v) {
        PyErr_Clear();
        return 0;
    }
    int rc = v == Py_None ? 0 : pys_u64(v, name, out);
    Py_DECREF(v);
    return rc;
}

/* A ring size: an int for every scope depth, or a list of four (depths 0, 1,
   2, 3 and deeper; 0 keeps the int's or the environment's) into by_depth. */
static int cfg_ring(PyObject *o, const char *name, uint64_t *out, uint64_t *by_depth)
{
    PyObject *v = PyObject_GetAttrString(o, name);
    if (!v) {
        PyErr_Clear();
        return 0;
    }
    int rc = 0;
    if (v == Py_None) {
        rc = 0;
    } else if (PyList_Check(v) || PyTuple_Check(v)) {
        if (PySequence_Size(v) != 4) {
            pys_raisef(STRATA_EINVAL, "CallConfig.%s: a list gives one size per scope depth (0, 1, 2, 3 and "
                       "deeper), so it has 4 entries, not %zd", name, PySequence_Size(v));
            rc = -1;
        }
        for (Py_ssize_t d = 0; rc == 0 && d < 4; d++) {
            PyObject *e = PySequence_GetItem(v, d);
            rc = e ? pys_u64(e, name, &by_depth[d]) : -1;
            Py_XDECREF(e);
        }
    } else {
        rc = pys_u64(v, name, out);
    }
    Py_DECREF(v);
    return rc;
}

int pys_call_config_from(PyObject *o, strata_call_config *out, bool *given)
{
    memset(out, 0, sizeof *out);
    *given = false;
    if (!o || o == Py_None)
        return 0;
    uint64_t timeout = 0, block_dim = 0, trace = 0;
    if (cfg_field(o, "timeout_ms", &timeout) < 0 || cfg_field(o, "block_dim", &block_dim) < 0 ||
        cfg_field(o, "trace", &trace) < 0 ||
        cfg_ring(o, "ring_task_window", &out->ring_task_window, out->ring_task_window_by_depth) < 0 ||
        cfg_ring(o, "ring_heap", &out->ring_heap, out->ring_heap_by_depth) < 0 ||
        cfg_ring(o, "ring_dep_pool", &out->ring_dep_pool, out->ring_dep_pool_by_depth) < 0)
        return -1;
    if (timeout > UINT32_MAX || block_dim > UINT32_MAX || trace > UINT32_MAX) {
        pys_raise(STRATA_EINVAL, "CallConfig: timeout_ms, block_dim and trace must fit in 32 bits");
        return -1;
    }
    out->trace = (uint32_t)trace;
    out->timeout_ms = (uint32_t)timeout;
    out->block_dim = (uint32_t)block_dim;
    *given = true;
    return 0;
}
