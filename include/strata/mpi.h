/* Strata over Open MPI: remote workers at level 4 and up.
 *
 * An SPMD program under mpirun: every rank builds the same top worker (a level-4
 * worker, say: its configuration and its named registrations,
 * strata_worker_register_orch_named), and its own level-3 worker. Rank 0 adds
 * the other ranks' workers to the top worker (strata_mpi_add_rank), initialises
 * it and runs it; every other rank serves its level-3 worker to rank 0 until
 * the top worker closes (strata_mpi_serve). Callables are found by name on
 * each rank: the top worker's init fails naming the rank and the callable when
 * a rank lacks one or has it as another kind.
 *
 * Tasks, their arguments, completions and messages travel as MPI messages.
 * Tensor data never crosses ranks by itself: a task to a remote worker names
 * buffers allocated on it (strata_worker_malloc with its worker id), and data
 * moves with strata_worker_copy_to / strata_worker_copy_from.
 *
 * The application owns MPI: it calls MPI_Init_thread (any thread level; Strata
 * calls MPI only from the thread driving the top worker, or serving) and
 * MPI_Finalize. Link libstrata_mpi (pkg-config strata-mpi) instead of
 * libstrata: the same library with this transport. What is promised when a
 * rank dies or hangs, with which MPI, is in docs/lifecycle.md. */
#ifndef STRATA_MPI_H
#define STRATA_MPI_H

#include <mpi.h>

#include "strata/worker.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Every rank, after MPI_Init and before any other call here: Strata works on a
   duplicate of comm (collective over comm). Rank 0 of comm holds the top
   worker. */
STRATA_API int strata_mpi_init(MPI_Comm comm);

/* Rank 0: the worker that rank `rank` serves becomes a child of w (level 4..6,
   NEW), with id *worker_id (ids count local and remote children together, in
   the order added). */
STRATA_API int strata_mpi_add_rank(strata_worker *w, int rank, int *worker_id);

/* Every other rank: initialise `w` (a configured worker one level below `top`,
   NEW) when rank 0's top worker starts, run what rank 0 sends it, and close it
   when the top worker closes; then return STRATA_OK. `top` is this rank's
   copy of the top worker, configured and registered as on rank 0 but never
   initialised: its names are how tasks find their functions here. A failure
   to start (a name missing here, w's init) is returned after rank 0 was told. */
STRATA_API int strata_mpi_serve(strata_worker *top, strata_worker *w);

/* Every rank, after the top worker was closed (rank 0) or serve returned (the
   others), before MPI_Finalize. */
STRATA_API int strata_mpi_finalize(void);

#ifdef __cplusplus
}
#endif

#endif
