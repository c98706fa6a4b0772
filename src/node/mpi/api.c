/* The public calls of include/strata/mpi.h that are neither the transport
 * (remote.c) nor the serving loop (serve.c). */
#include "node/mpi/mpi.h"

#include "strata/mpi.h"

#include <stdlib.h>

#include "core/alloc.h"
#include "core/trace.h"
#include "core/sys.h"

MPI_Comm strata__mpi_comm = MPI_COMM_NULL;

/* Rank 0: which ranks were asked to leave strata_mpi_serve (or left by
   themselves); the others are asked at strata_mpi_finalize, so that no rank
   waits for ever when the top worker was never initialised, or its init failed
   before reaching them. */
static unsigned char *told;
static int nranks;

void strata__mpi_told_to_exit(int rank)
{
    if (told && rank > 0 && rank < nranks)
        told[rank] = 1;
}

int strata_mpi_init(MPI_Comm comm)
{
    strata__clear_error();
    int up = 0;
    MPI_Initialized(&up);
    if (!up)
        return strata__fail(STRATA_ESTATE, "strata_mpi_init: MPI is not initialised; call MPI_Init_thread first");
    if (strata__mpi_comm != MPI_COMM_NULL)
        return strata__fail(STRATA_ESTATE, "strata_mpi_init: called twice (strata_mpi_finalize first)");
    if (MPI_Comm_dup(comm, &strata__mpi_comm) != MPI_SUCCESS)
        return strata__fail(STRATA_ESYS, "strata_mpi_init: MPI_Comm_dup of the communicator failed");
    /* Errors come back as codes: with ULFM a failed rank is an answer, not the
       end of this process (node/mpi/remote.c). */
    MPI_Comm_set_errhandler(strata__mpi_comm, MPI_ERRORS_RETURN);
    MPI_Comm_size(strata__mpi_comm, &nranks);
    /* One trace for the job, written by rank 0: every rank inherits the same
       STRATA_TRACE, and the serving ones send their events to rank 0 */
    int rank = 0;
    MPI_Comm_rank(strata__mpi_comm, &rank);
    if (rank != 0)
        strata__trace_env_off();
    told = strata__calloc((size_t)nranks, 1);
    if (!told) {
        MPI_Comm_free(&strata__mpi_comm);
        return strata__fail(STRATA_ENOMEM, "strata_mpi_init: out of host memory");
    }
    return STRATA_OK;
}

int strata_mpi_add_rank(strata_worker *w, int rank, int *worker_id)
{
    strata__clear_error();
    if (w == NULL || worker_id == NULL)
        return strata__fail(STRATA_EINVAL, "strata_mpi_add_rank: %s is NULL", w == NULL ? "w" : "worker_id");
    if (strata__mpi_comm == MPI_COMM_NULL)
        return strata__fail(STRATA_ESTATE, "strata_mpi_add_rank: call strata_mpi_init first");
    int me = 0, size = 0;
    MPI_Comm_rank(strata__mpi_comm, &me);
    MPI_Comm_size(strata__mpi_comm, &size);
    if (me != 0)
        return strata__fail(STRATA_EINVAL, "strata_mpi_add_rank: this is rank %d; the top worker lives on rank 0, "
                            "and rank %d serves (strata_mpi_serve)", me, me);
    if (rank <= 0 || rank >= size)
        return strata__fail(STRATA_EINVAL, "strata_mpi_add_rank: rank %d does not serve; ranks 1..%d of %d do",
                            rank, size - 1, size);
    strata__node *n = strata__worker_node(w);
    for (uint32_t i = 0; n && i < n->nadded; i++)
        if (n->added[i].tp && n->added[i].rank == rank)
            return strata__fail(STRATA_EINVAL, "strata_mpi_add_rank: rank %d was added already (worker %u); a rank "
                                "serves one worker", rank, i);
    return strata__worker_add_remote(w, &strata__mpi_transport, rank, worker_id, "strata_mpi_add_rank");
}

int strata_mpi_finalize(void)
{
    strata__clear_error();
    if (strata__mpi_comm == MPI_COMM_NULL)
        return STRATA_OK;
    int me = 0;
    MPI_Comm_rank(strata__mpi_comm, &me);
    for (int r = 1; me == 0 && r < nranks; r++)
        if (!told[r])
            strata__mpi_tell_exit(r, strata__now_ns() + 10000000000ull);
    free(told);
    told = NULL;
    MPI_Comm_free(&strata__mpi_comm);
    strata__mpi_comm = MPI_COMM_NULL;
    return STRATA_OK;
}
