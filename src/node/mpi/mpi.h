/* Strata's MPI layer, inside libstrata_mpi: the transport to remote workers
 * (remote.c, rank 0), the loop of a serving rank (serve.c) and the public calls
 * (api.c, include/strata/mpi.h). */
#ifndef STRATA_NODE_MPI_MPI_H
#define STRATA_NODE_MPI_MPI_H

#include <mpi.h>
#if defined(__has_include)
#if __has_include(<mpi-ext.h>)
#include <mpi-ext.h>   /* Open MPI's extensions: ULFM's MPIX_ERR_PROC_FAILED, where it was built with it */
#endif
#endif

#include "node/mpi/protocol.h"
#include "node/transport.h"

/* Strata's duplicate of the application's communicator (strata_mpi_init);
   MPI_COMM_NULL before and after. */
extern MPI_Comm strata__mpi_comm;

extern const strata__transport strata__mpi_transport;

/* Rank 0: `rank` was asked to exit, or left strata_mpi_serve by itself (a
   failed start): strata_mpi_finalize does not tell it again (api.c). */
void strata__mpi_told_to_exit(int rank);
/* Rank 0: ask `rank` to leave strata_mpi_serve and wait, bounded, for its
   answer (remote.c). */
void strata__mpi_tell_exit(int rank, uint64_t deadline_ns);

#endif
