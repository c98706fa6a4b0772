/* Remote Workers over MPI from Python (strata.mpi_init, Worker.add_rank,
 * strata.mpi_serve, strata.mpi_finalize), over include/strata/mpi.h. Built in
 * where the build found Open MPI (STRATA_PYTHON_MPI; CMake links the MPI layer
 * in); elsewhere each call raises StateError saying so.
 *
 * The package initialises MPI itself when the program has not (MPI_Init_thread,
 * MPI_THREAD_FUNNELED: Strata calls MPI only from the thread that drives the
 * top worker or serves) and then finalises it too. */
#include "pystrata.h"

#ifdef STRATA_PYTHON_MPI
#include <strata/mpi.h>

static bool mpi_is_ours;   /* MPI_Init_thread was called here: MPI_Finalize is ours too */

static PyObject *mod_mpi_init(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    int up = 0;
    MPI_Initialized(&up);
    if (!up) {
        int provided;
        MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        mpi_is_ours = true;
    }
    int rc = strata_mpi_init(MPI_COMM_WORLD);
    if (rc != STRATA_OK)
        return pys_raise(rc, NULL);
    int rank = 0, size = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    return Py_BuildValue("(ii)", rank, size);
}

static PyObject *mod_mpi_finalize(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = strata_mpi_finalize();
    if (mpi_is_ours) {
        MPI_Finalize();
        mpi_is_ours = false;
    }
    Py_END_ALLOW_THREADS
    if (rc != STRATA_OK)
        return pys_raise(rc, NULL);
    Py_RETURN_NONE;
}

/* mpi_serve(top, w): w runs here what rank 0's top worker sends it. The
   orchestration functions registered on top find w as the Worker that runs
   (top's `serving`). */
static PyObject *mod_mpi_serve(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 2 || !PyObject_TypeCheck(args[0], pys.Worker) || !PyObject_TypeCheck(args[1], pys.Worker)) {
        PyErr_SetString(PyExc_TypeError, "mpi_serve(top: Worker, worker: Worker)");
        return NULL;
    }
    pys_worker *top = (pys_worker *)args[0], *w = (pys_worker *)args[1];
    if (!top->w || !w->w)
        return pys_raise(STRATA_ESTATE, "mpi_serve: a worker is closed");
    PyObject *old = top->serving;
    top->serving = Py_NewRef(args[1]);
    Py_XDECREF(old);
    int rc;
    unsigned long prev = w->busy_thread;
    w->busy_thread = PyThread_get_thread_ident();
    Py_BEGIN_ALLOW_THREADS   /* the orchestration functions take it back, as in a worker child */
    rc = strata_mpi_serve(top->w, w->w);
    Py_END_ALLOW_THREADS
    w->busy_thread = prev;
    Py_CLEAR(top->serving);
    if (rc != STRATA_OK)
        return pys_raise(rc, NULL);
    Py_RETURN_NONE;
}

int pys_add_rank(pys_worker *w, int rank, int *id)
{
    int rc = strata_mpi_add_rank(w->w, rank, id);
    if (rc != STRATA_OK) {
        pys_raise(rc, NULL);
        return -1;
    }
    return 0;
}

#else

static PyObject *no_mpi(void)
{
    return pys_raise(STRATA_ESTATE, "this build of the strata package has no MPI (Open MPI was not found when it "
                                    "was built: scripts/deps.sh test installs it, then rebuild)");
}

static PyObject *mod_mpi_init(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return no_mpi();
}

static PyObject *mod_mpi_finalize(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return no_mpi();
}

static PyObject *mod_mpi_serve(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    (void)args;
    (void)nargs;
    return no_mpi();
}

int pys_add_rank(pys_worker *w, int rank, int *id)
{
    (void)w;
    (void)rank;
    (void)id;
    no_mpi();
    return -1;
}
#endif

PyMethodDef pys_mpi_methods[] = {
    {"mpi_init", mod_mpi_init, METH_NOARGS,
     "mpi_init() -> (rank, size): initialise MPI if the program has not, and Strata's use of it."},
    {"mpi_finalize", mod_mpi_finalize, METH_NOARGS,
     "mpi_finalize(): end Strata's use of MPI (rank 0 tells every serving rank to leave), and MPI if mpi_init "
     "started it."},
    {"mpi_serve", (PyCFunction)(void (*)(void))mod_mpi_serve, METH_FASTCALL,
     "mpi_serve(top, worker): on a rank other than 0, serve `worker` to rank 0's top worker until it closes."},
    {NULL, NULL, 0, NULL},
};
