/* HostBuffer (shared host memory every child sees: buffer protocol, numpy's
 * __array_interface__, views) and ChipBuffer (chip-resident memory of one chip
 * worker: views only; copy_to/copy_from move data). */

#include "pystrata.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- HostBuffer ---- */

PyObject *pys_hostbuf_new(PyObject *worker, void *p, uint64_t nbytes)
{
    pys_hostbuf *b = PyObject_GC_New(pys_hostbuf, pys.HostBuffer);
    if (!b)
        return NULL;
    b->p = p;
    b->nbytes = nbytes;
    b->worker = worker;   /* borrowed: see pys_hostbuf */
    b->exports = 0;
    b->detached = NULL;
    b->remapped = false;
    if (pys_known_add((uint64_t)(uintptr_t)p, nbytes, (PyObject *)b) < 0) {
        b->worker = NULL;
        Py_DECREF(b);
        return NULL;
    }
    pys_worker *w = (pys_worker *)worker;
    b->prev = NULL;
    b->next = w->hostbufs;
    if (w->hostbufs)
        w->hostbufs->prev = b;
    w->hostbufs = b;
    PyObject_GC_Track(b);
    return (PyObject *)b;
}

static void hostbuf_unlink(pys_hostbuf *b)
{
    pys_worker *w = (pys_worker *)b->worker;
    if (b->prev)
        b->prev->next = b->next;
    else
        w->hostbufs = b->next;
    if (b->next)
        b->next->prev = b->prev;
    b->prev = b->next = NULL;
    pys_known_remove((uint64_t)(uintptr_t)b->p, (PyObject *)b);
}

static void page_range(const pys_hostbuf *b, uintptr_t *lo, uintptr_t *hi)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    *lo = (uintptr_t)b->p & ~(page - 1);
    *hi = ((uintptr_t)b->p + b->nbytes + page - 1) & ~(page - 1);
}

void pys_hostbufs_forget(pys_worker *w)
{
    while (w->hostbufs) {
        pys_hostbuf *b = w->hostbufs;
        hostbuf_unlink(b);
        b->worker = NULL;   /* its memory stays as it is (still mapped in this process) */
    }
}

PyObject *pys_hostbufs_detach(pys_worker *w)
{
    PyObject *kept = PyList_New(0);
    if (!kept)
        PyErr_Clear();
    while (w->hostbufs) {
        pys_hostbuf *b = w->hostbufs;
        hostbuf_unlink(b);
        if (b->exports > 0 && b->p) {
            /* Keep its contents at the same address: copy out now, map private
               memory there once the heap is gone (pys_hostbufs_remap). */
            uintptr_t lo, hi;
            page_range(b, &lo, &hi);
            void *copy = mmap(NULL, hi - lo, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (copy != MAP_FAILED && kept && PyList_Append(kept, (PyObject *)b) == 0) {
                memcpy(copy, (void *)lo, hi - lo);
                b->detached = copy;
            } else if (copy != MAP_FAILED) {
                munmap(copy, hi - lo);
            }
        } else {
            b->p = NULL;   /* no view: nothing can reach it any more */
        }
        b->worker = NULL;
    }
    return kept;
}

/* Host buffers of closed workers whose pages are private memory mapped here,
   listed through prev/next (they left their worker's list). A page stays mapped
   while a buffer on this list covers it. */
static pys_hostbuf *remapped;

static bool page_ours(uintptr_t pg, const pys_hostbuf *except)
{
    for (const pys_hostbuf *o = remapped; o; o = o->next) {
        uintptr_t lo, hi;
        page_range(o, &lo, &hi);
        if (o != except && lo <= pg && pg < hi)
            return true;
    }
    return false;
}

/* Map private pages over [lo, hi) where none of ours are; false if some page
   belongs to a mapping that is not ours (another took the range meanwhile). */
static bool map_private(uintptr_t lo, uintptr_t hi, uintptr_t page)
{
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE;
    void *at = mmap((void *)lo, hi - lo, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (at == (void *)lo)
        return true;
    if (at != MAP_FAILED)
        munmap(at, hi - lo);   /* a kernel without NOREPLACE put it elsewhere */
    for (uintptr_t pg = lo; pg < hi; pg += page) {
        if (page_ours(pg, NULL))
            continue;
        at = mmap((void *)pg, page, PROT_READ | PROT_WRITE, flags, -1, 0);
        if (at != (void *)pg) {
            if (at != MAP_FAILED)
                munmap(at, page);
            for (uintptr_t back = lo; back < pg; back += page)   /* undo what this call mapped */
                if (!page_ours(back, NULL))
                    munmap((void *)back, page);
            return false;
        }
    }
    return true;
}

/* After the worker's close unmapped the heap: put each kept copy back at its
   address, in private memory, until the buffer dies (hostbuf_dealloc). A range
   another mapping took meanwhile is left alone, and the buffer's views then
   read whatever is there: the one case close cannot keep them valid. */
void pys_hostbufs_remap(PyObject *kept)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (Py_ssize_t i = 0; kept && i < PyList_Size(kept); i++) {
        pys_hostbuf *b = (pys_hostbuf *)PyList_GetItem(kept, i);
        uintptr_t lo, hi;
        page_range(b, &lo, &hi);
        if (map_private(lo, hi, page)) {
            memcpy(b->p, (char *)b->detached + ((uintptr_t)b->p - lo), b->nbytes);
            b->remapped = true;
            b->prev = NULL;
            b->next = remapped;
            if (remapped)
                remapped->prev = b;
            remapped = b;
        }
        munmap(b->detached, hi - lo);
        b->detached = NULL;
    }
}

/* A remapped buffer died: leave the list and unmap its pages no other
   remapped buffer covers. */
static void release_remapped(pys_hostbuf *b)
{
    if (b->prev)
        b->prev->next = b->next;
    else
        remapped = b->next;
    if (b->next)
        b->next->prev = b->prev;
    b->remapped = false;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), lo, hi;
    page_range(b, &lo, &hi);
    uintptr_t run = 0;   /* start of a run of pages to unmap, or 0 */
    for (uintptr_t pg = lo; pg <= hi; pg += page) {
        bool keep = pg == hi || page_ours(pg, NULL);
        if (!keep && !run)
            run = pg;
        if (keep && run) {
            munmap((void *)run, pg - run);
            run = 0;
        }
    }
}

static int hostbuf_traverse(PyObject *self, visitproc visit, void *arg)
{
    (void)self;
    Py_VISIT(Py_TYPE(self));   /* its worker is borrowed: not a reference the collector follows */
    return 0;
}

static void hostbuf_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    pys_hostbuf *b = (pys_hostbuf *)self;
    PyObject_GC_UnTrack(self);
    if (b->remapped)
        release_remapped(b);
    if (b->worker) {
        pys_worker *w = (pys_worker *)b->worker;
        hostbuf_unlink(b);
        if (w->w)
            (void)strata_worker_host_free(w->w, b->p);
        b->worker = NULL;
    }
    ((freefunc)PyType_GetSlot(tp, Py_tp_free))(self);
    Py_DECREF(tp);
}

static int hostbuf_getbuffer(PyObject *self, Py_buffer *view, int flags)
{
    pys_hostbuf *b = (pys_hostbuf *)self;
    if (!b->p) {
        PyErr_SetString(pys.errors[-STRATA_ESTATE], "this HostBuffer's worker is closed and nothing viewed it");
        view->obj = NULL;
        return -1;
    }
    if (PyBuffer_FillInfo(view, self, b->p, (Py_ssize_t)b->nbytes, 0, flags) < 0)
        return -1;
    b->exports++;
    return 0;
}

static void hostbuf_releasebuffer(PyObject *self, Py_buffer *view)
{
    (void)view;
    ((pys_hostbuf *)self)->exports--;
}

static PyObject *hostbuf_tensor(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    pys_hostbuf *b = (pys_hostbuf *)self;
    if (!b->worker)
        return pys_raise(STRATA_ESTATE, "this HostBuffer's worker is closed: its memory no longer reaches any child");
    return pys_make_view(self, (uint64_t)(uintptr_t)b->p, b->nbytes, args, nargs, kwnames);
}

static PyObject *hostbuf_get_array_interface(PyObject *self, void *c)
{
    (void)c;
    pys_hostbuf *b = (pys_hostbuf *)self;
    if (!b->p)
        return pys_raise(STRATA_ESTATE, "this HostBuffer's worker is closed and nothing viewed it");
    return Py_BuildValue("{s:(K),s:s,s:(K,O),s:i}", "shape", (unsigned long long)b->nbytes, "typestr", "|u1", "data",
                         (unsigned long long)(uintptr_t)b->p, Py_False, "version", 3);
}

static PyObject *hostbuf_get_nbytes(PyObject *self, void *c)
{
    (void)c;
    return PyLong_FromUnsignedLongLong(((pys_hostbuf *)self)->nbytes);
}

static PyObject *hostbuf_get_address(PyObject *self, void *c)
{
    (void)c;
    return PyLong_FromUnsignedLongLong((uint64_t)(uintptr_t)((pys_hostbuf *)self)->p);
}

static Py_ssize_t hostbuf_len(PyObject *self)
{
    return (Py_ssize_t)((pys_hostbuf *)self)->nbytes;
}

static PyObject *hostbuf_repr(PyObject *self)
{
    pys_hostbuf *b = (pys_hostbuf *)self;
    char buf[128];
    snprintf(buf, sizeof buf, "<strata.HostBuffer 0x%llx, %llu bytes%s>", (unsigned long long)(uintptr_t)b->p,
             (unsigned long long)b->nbytes, b->worker ? "" : ", its worker closed");
    return PyUnicode_FromString(buf);
}

/* DLPack export, through numpy: a uint8 array over this buffer (which holds a
   buffer export, so the memory outlives the capsule's consumer). */
static PyObject *hostbuf_dlpack(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    (void)args;
    (void)nargs;
    (void)kwnames;   /* stream: meaningless for host memory */
    PyObject *f = pys_runtime_attr("hostbuf_dlpack");
    PyObject *r = f ? PyObject_CallFunctionObjArgs(f, self, NULL) : NULL;
    Py_XDECREF(f);
    return r;
}

static PyObject *hostbuf_dlpack_device(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return Py_BuildValue("(ii)", 1, 0);   /* kDLCPU, device 0 */
}

static PyMethodDef hostbuf_methods[] = {
    {"__dlpack__", (PyCFunction)(void (*)(void))hostbuf_dlpack, METH_FASTCALL | METH_KEYWORDS,
     "DLPack export (CPU memory)."},
    {"__dlpack_device__", hostbuf_dlpack_device, METH_NOARGS, "(kDLCPU, 0)."},
    {"tensor", (PyCFunction)(void (*)(void))hostbuf_tensor, METH_FASTCALL | METH_KEYWORDS,
     "tensor(shape, dtype, strides=None, offset=0): a view of this buffer for TaskArgs."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef hostbuf_getset[] = {
    {"__array_interface__", hostbuf_get_array_interface, NULL, "numpy's array interface (bytes).", NULL},
    {"nbytes", hostbuf_get_nbytes, NULL, "Size, bytes.", NULL},
    {"address", hostbuf_get_address, NULL, "The address (the same in every child).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot hostbuf_slots[] = {
    {Py_tp_dealloc, hostbuf_dealloc},
    {Py_tp_traverse, hostbuf_traverse},
    {Py_bf_getbuffer, hostbuf_getbuffer},
    {Py_bf_releasebuffer, hostbuf_releasebuffer},
    {Py_tp_methods, hostbuf_methods},
    {Py_tp_getset, hostbuf_getset},
    {Py_sq_length, hostbuf_len},
    {Py_tp_repr, hostbuf_repr},
    {Py_tp_doc, "Shared host memory every child of the worker sees at the same address (Worker.host_alloc)."},
    {0, NULL},
};
PyType_Spec pys_hostbuf_spec = {"strata.HostBuffer", sizeof(pys_hostbuf), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
                                 hostbuf_slots};

/* ---- ChipBuffer ---- */

PyObject *pys_chipbuf_new(PyObject *worker, strata_buffer buf)
{
    pys_chipbuf *b = PyObject_GC_New(pys_chipbuf, pys.ChipBuffer);
    if (!b)
        return NULL;
    b->b = buf;
    b->worker = worker;   /* borrowed: see pys_hostbuf */
    PyObject_GC_Track(b);
    return (PyObject *)b;
}

static int chipbuf_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(((pys_chipbuf *)self)->worker);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int chipbuf_clear(PyObject *self)
{
    Py_CLEAR(((pys_chipbuf *)self)->worker);
    return 0;
}

static void chipbuf_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Py_XDECREF(((pys_chipbuf *)self)->worker);
    ((freefunc)PyType_GetSlot(tp, Py_tp_free))(self);
    Py_DECREF(tp);
}

static PyObject *chipbuf_tensor(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    pys_chipbuf *b = (pys_chipbuf *)self;
    return pys_make_view(self, b->b.addr, b->b.nbytes, args, nargs, kwnames);
}

static PyObject *chipbuf_get(PyObject *self, void *c)
{
    pys_chipbuf *b = (pys_chipbuf *)self;
    if (c == (void *)0)
        return PyLong_FromUnsignedLongLong(b->b.addr);
    if (c == (void *)1)
        return PyLong_FromUnsignedLongLong(b->b.nbytes);
    return PyLong_FromLong(b->b.worker);
}

static PyObject *chipbuf_repr(PyObject *self)
{
    pys_chipbuf *b = (pys_chipbuf *)self;
    char buf[128];
    snprintf(buf, sizeof buf, "<strata.ChipBuffer worker=%d base=0x%llx nbytes=%llu>", b->b.worker,
             (unsigned long long)b->b.addr, (unsigned long long)b->b.nbytes);
    return PyUnicode_FromString(buf);
}

static PyObject *chipbuf_int(PyObject *self)
{
    return PyLong_FromUnsignedLongLong(((pys_chipbuf *)self)->b.addr);
}

static PyMethodDef chipbuf_methods[] = {
    {"tensor", (PyCFunction)(void (*)(void))chipbuf_tensor, METH_FASTCALL | METH_KEYWORDS,
     "tensor(shape, dtype, strides=None, offset=0): a view of this buffer for TaskArgs."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef chipbuf_getset[] = {
    {"base", chipbuf_get, NULL, "Base address in the chip's memory.", (void *)0},
    {"nbytes", chipbuf_get, NULL, "Size, bytes.", (void *)1},
    {"worker", chipbuf_get, NULL, "The chip worker that holds it.", (void *)2},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot chipbuf_slots[] = {
    {Py_tp_dealloc, chipbuf_dealloc},
    {Py_tp_traverse, chipbuf_traverse},
    {Py_tp_clear, chipbuf_clear},
    {Py_tp_methods, chipbuf_methods},
    {Py_tp_getset, chipbuf_getset},
    {Py_tp_repr, chipbuf_repr},
    {Py_nb_int, chipbuf_int},
    {Py_nb_index, chipbuf_int},
    {Py_tp_doc, "Chip-resident memory of one chip worker (Worker.malloc); lives until freed or close."},
    {0, NULL},
};
PyType_Spec pys_chipbuf_spec = {"strata.ChipBuffer", sizeof(pys_chipbuf), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
                                 chipbuf_slots};
