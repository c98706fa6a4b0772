/* The task window of a node worker's runs and its ready FIFOs: made at the
 * first run (node_task_window slots), kept for the next, freed at destroy. */
#include "node/node.h"

#include <stdlib.h>

#include "core/alloc.h"

/* The task window and the ready FIFOs, made at the first run. */
int strata__node_make_window(strata__node *n)
{
    n->window = n->cfg.node_task_window;
    n->free_edge = STRATA__NONE;
    n->tasks = strata__calloc(n->window, sizeof n->tasks[0]);
    n->chip_ready = strata__calloc(n->nnext ? n->nnext : 1, sizeof n->chip_ready[0]);
    bool ok = n->tasks && n->chip_ready;
    for (uint32_t k = 0; ok && k < n->nnext; k++)
        ok = (n->chip_ready[k].items = strata__malloc(n->window * sizeof(uint32_t))) != NULL;
    ok = ok && (n->sub_ready.items = strata__malloc(n->window * sizeof(uint32_t))) != NULL;
    ok = ok && (n->group_ready.items = strata__malloc(n->window * sizeof(uint32_t))) != NULL;
    ok = ok && (n->engine_ready.items = strata__malloc(n->window * sizeof(uint32_t))) != NULL;
    if (ok)
        return STRATA_OK;
    strata__node_free_window(n);
    return strata__fail(STRATA_ENOMEM, "strata_worker_run: out of host memory for a task window of %u tasks "
                        "(node_task_window)", n->cfg.node_task_window);
}

void strata__node_free_window(strata__node *n)
{
    for (uint32_t i = 0; n->tasks && i < n->window; i++) {
        free(n->tasks[i].block);
        free(n->tasks[i].group_message);
    }
    free(n->tasks);
    n->tasks = NULL;
    for (uint32_t k = 0; n->chip_ready && k < n->nnext; k++)
        free(n->chip_ready[k].items);
    free(n->chip_ready);
    n->chip_ready = NULL;
    free(n->sub_ready.items);
    free(n->group_ready.items);
    free(n->engine_ready.items);
    n->sub_ready.items = n->group_ready.items = n->engine_ready.items = NULL;
    free(n->edges);
    n->edges = NULL;
    n->nedges = n->edges_cap = 0;
}
