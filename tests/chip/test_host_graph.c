/* chip.host_graph: the host_build_graph runtime (strata_chip_add_dep). A run's
 * graph is built whole from explicit edges, then run: random DAGs whose order
 * is not the submit order run every edge's producer to its end before its
 * consumer starts (a logical clock the kernels tick), on one and on several
 * cores, many runs on one worker; a cycle, an edge to a task not submitted, a
 * task on itself, a graph larger than the task window or the dep_pool, and an
 * edge on the other runtime are refused saying why, with nothing run and the
 * worker ready for the next run; a failing task cancels what follows it. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define MAX_TASKS 512

static _Atomic uint32_t clock_ticks;
static uint32_t started[MAX_TASKS], ended[MAX_TASKS];
static _Atomic uint32_t ran;

/* scalars: the task's number, then 1 to fail */
static int probe(const strata_task_args *a)
{
    uint32_t k = (uint32_t)a->scalars[0];
    started[k] = atomic_fetch_add(&clock_ticks, 1);
    for (volatile int spin = 0; spin < (int)(k % 7) * 200; spin++)
        ;
    ended[k] = atomic_fetch_add(&clock_ticks, 1);
    atomic_fetch_add(&ran, 1);
    return a->nscalars > 1 && a->scalars[1] ? 1 : 0;
}

typedef struct graph {
    uint32_t n, ne;
    uint32_t from[4 * MAX_TASKS], to[4 * MAX_TASKS];
    int      fail_task;      /* -1: none */
    uint32_t nalloc;         /* intermediate buffers allocated first (alloc_bytes each, default 1 KiB) */
    uint64_t alloc_bytes;
    uint32_t alloc_depth;    /* in scopes this deep */
    int      status[8];      /* what the calls returned: submit, add_dep */
} graph;

static graph the_graph;

static int graph_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)args;
    (void)cfg;
    graph *g = &the_graph;
    for (uint32_t d = 0; d < g->alloc_depth; d++)
        if (strata_chip_scope_begin(o))
            return STRATA_ERING;
    for (uint32_t k = 0; k < g->nalloc; k++) {
        strata_tensor t;
        int rc = strata_chip_alloc(o, STRATA_U8, 1, (uint64_t[]){g->alloc_bytes ? g->alloc_bytes : 1024}, &t);
        if (rc)
            return rc;
    }
    for (uint32_t d = 0; d < g->alloc_depth; d++)
        if (strata_chip_scope_end(o))
            return STRATA_ERING;
    for (uint32_t k = 0; k < g->n; k++) {
        uint64_t s[2] = {k, (int)k == g->fail_task};
        uint32_t id = UINT32_MAX;
        int rc = strata_chip_submit_task(o, 0, &(strata_task_args){NULL, NULL, 0, s, 2}, &id);
        if (rc) {
            g->status[0] = rc;
            return rc;
        }
        CHECK_EQ_U64(id, k);
    }
    for (uint32_t i = 0; i < g->ne; i++) {
        int rc = strata_chip_add_dep(o, g->from[i], g->to[i]);
        if (rc) {
            g->status[1] = rc;
            return rc;
        }
    }
    return STRATA_OK;
}

static const strata_kernel_entry probe_kernels[] = {{0, STRATA_AIV, probe}};

static strata_worker *host_graph_worker(uint32_t aiv, const char *runtime, strata_handle *h)
{
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 2);
    cfg.runtime = runtime;
    cfg.aiv_cores = aiv;
    cfg.device_memory_bytes = 16 << 20;
    strata_worker *w;
    CHECK_OK(strata_worker_create(&cfg, &w));
    strata_chip_callable c = {"graph", graph_orch, probe_kernels, 1};
    CHECK_OK(strata_worker_register_chip(w, &c, h));
    CHECK_OK(strata_worker_init(w));
    return w;
}

/* A random DAG of n tasks: edges from earlier to later in a random order of
   the tasks (not the submit order), about `per` per task. */
static void random_dag(graph *g, uint32_t n, uint32_t per, unsigned seed)
{
    uint32_t order[MAX_TASKS];
    srand(seed);
    for (uint32_t k = 0; k < n; k++)
        order[k] = k;
    for (uint32_t k = n; k-- > 1;) {
        uint32_t j = (uint32_t)rand() % (k + 1), t = order[k];
        order[k] = order[j];
        order[j] = t;
    }
    memset(g, 0, sizeof *g);
    g->n = n;
    g->fail_task = -1;
    for (uint32_t k = 1; k < n; k++)
        for (uint32_t e = 0; e < per && g->ne < 4 * MAX_TASKS; e++) {
            uint32_t p = (uint32_t)rand() % k;
            g->from[g->ne] = order[p];
            g->to[g->ne] = order[k];
            g->ne++;
        }
}

static void check_order(const graph *g)
{
    for (uint32_t i = 0; i < g->ne; i++)
        if (!(ended[g->from[i]] < started[g->to[i]]))
            test_fail(__FILE__, __LINE__, "edge %u -> %u: the consumer started (tick %u) before its producer ended "
                      "(tick %u)", g->from[i], g->to[i], started[g->to[i]], ended[g->from[i]]);
}

TEST_CASE(random_dags_follow_their_edges)
{
    for (uint32_t aiv = 1; aiv <= 3; aiv += 2) {
        strata_handle h;
        strata_worker *w = host_graph_worker(aiv, "host_build_graph", &h);
        for (unsigned seed = 1; seed <= 20; seed++) {
            random_dag(&the_graph, 64 + seed * 20, 1 + seed % 4, seed);
            atomic_store(&ran, 0);
            CHECK_OK(strata_worker_run_chip(w, h, NULL, NULL));
            CHECK_EQ_U64(atomic_load(&ran), the_graph.n);
            check_order(&the_graph);
        }
        strata_run_stats st;
        CHECK_OK(strata_worker_stats(w, &st));
        CHECK(st.dep_pool.high_water > 0);
        strata_worker_destroy(w);
    }
}

/* n tasks and one edge, from -> to. */
static void one_edge_graph(uint32_t n, uint32_t from, uint32_t to)
{
    random_dag(&the_graph, n, 0, 1);
    the_graph.ne = 1;
    the_graph.from[0] = from;
    the_graph.to[0] = to;
}

/* The run's error names the cycle, starting at any of its tasks. */
static void check_cycle_named(const char *a, const char *b, const char *c)
{
    const char *e = strata_last_error();
    if (!strstr(e, a) && !strstr(e, b) && !(c && strstr(e, c)))
        test_fail(__FILE__, __LINE__, "the error does not name the cycle (%s): %s", a, e);
}

TEST_CASE(refusals_run_nothing)
{
    strata_handle h;
    strata_worker *w = host_graph_worker(2, "host_build_graph", &h);
    /* a cycle 3 -> 4 -> 5 -> 3 among a chain: nothing runs, the run says where */
    random_dag(&the_graph, 8, 0, 1);
    the_graph.ne = 4;
    uint32_t from[] = {0, 3, 4, 5}, to[] = {3, 4, 5, 3};
    memcpy(the_graph.from, from, sizeof from);
    memcpy(the_graph.to, to, sizeof to);
    atomic_store(&ran, 0);
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, NULL), STRATA_EINVAL);
    check_cycle_named("task 3 (func_id 0) -> task 4 (func_id 0) -> task 5 (func_id 0) -> task 3",
                      "task 4 (func_id 0) -> task 5 (func_id 0) -> task 3 (func_id 0) -> task 4",
                      "task 5 (func_id 0) -> task 3 (func_id 0) -> task 4 (func_id 0) -> task 5");
    CHECK_ERROR_HAS("nothing ran");
    CHECK_EQ_U64(atomic_load(&ran), 0);
    /* a cycle 3 -> 4 -> 3 with tasks behind it (4 -> 0 -> 1): the message
       names the cycle, not a task that only waits for it */
    random_dag(&the_graph, 6, 0, 1);
    the_graph.ne = 4;
    uint32_t from2[] = {3, 4, 4, 0}, to2[] = {4, 3, 0, 1};
    memcpy(the_graph.from, from2, sizeof from2);
    memcpy(the_graph.to, to2, sizeof to2);
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, NULL), STRATA_EINVAL);
    check_cycle_named("make a cycle, task 3 (func_id 0) -> task 4 (func_id 0) -> task 3:",
                      "make a cycle, task 4 (func_id 0) -> task 3 (func_id 0) -> task 4:", NULL);
    /* a cycle longer than a message shows: its first 8 tasks and its length */
    random_dag(&the_graph, 40, 0, 1);
    the_graph.ne = 20;
    for (uint32_t k = 0; k < 20; k++) {
        the_graph.from[k] = 10 + k;
        the_graph.to[k] = k + 1 < 20 ? 11 + k : 10;
    }
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, NULL), STRATA_EINVAL);
    CHECK_ERROR_HAS(" -> ... (20 tasks in all): no order can run it");
    CHECK_EQ_U64(atomic_load(&ran), 0);
    /* an edge before any task */
    one_edge_graph(0, 0, 1);
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, NULL), STRATA_EINVAL);
    CHECK_ERROR_HAS("strata_chip_add_dep(0, 1): this run has submitted no task yet");
    /* intermediates that outgrow the heap ring: all are held until the graph runs */
    strata_call_config small_heap = {.ring_heap = 4096};
    random_dag(&the_graph, 4, 1, 1);
    the_graph.nalloc = 5;
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, &small_heap), STRATA_ERING);
    CHECK_ERROR_HAS("runtime host_build_graph runs nothing before the orchestration function returns, so a run's "
                    "intermediate buffers are all held at once (4096 bytes so far); set call_config.ring_heap to "
                    "at least 5120");
    CHECK_EQ_U64(atomic_load(&ran), 0);
    CHECK_EQ_U64(strata_worker_state(w), STRATA_STATE_READY);
    /* every scope depth uses the depth-0 ring there, and the message says so */
    random_dag(&the_graph, 2, 1, 1);
    the_graph.nalloc = 1;
    the_graph.alloc_bytes = 8192;
    the_graph.alloc_depth = 2;
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, &small_heap), STRATA_ERING);
    CHECK_ERROR_HAS("heap ring of scope depth 2 (runtime host_build_graph keeps every depth in the ring of depth 0) "
                    "is 4096 bytes (call_config.ring_heap); a 8192-byte buffer can never fit");
    /* an edge to a task not submitted yet, and a task on itself */
    one_edge_graph(4, 1, 9);
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, NULL), STRATA_EINVAL);
    CHECK_ERROR_HAS("strata_chip_add_dep(1, 9): task 9 has not been submitted; this run has tasks 0 to 3");
    CHECK_EQ_U64(atomic_load(&ran), 0);
    the_graph.to[0] = 1;
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, NULL), STRATA_EINVAL);
    CHECK_ERROR_HAS("a task cannot wait for itself");
    /* more tasks than the task window holds */
    strata_call_config small = {.ring_task_window = 16};
    random_dag(&the_graph, 17, 1, 2);
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, &small), STRATA_ERING);
    CHECK_ERROR_HAS("host_build_graph holds a run's whole graph in the task_window ring, which has 16 slots");
    /* more edges than the dep_pool holds */
    strata_call_config few = {.ring_dep_pool = 8};
    random_dag(&the_graph, 32, 2, 3);
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, &few), STRATA_ERING);
    CHECK_ERROR_HAS("explicit edges do not fit the dep_pool ring (8 edge records");
    CHECK_EQ_U64(atomic_load(&ran), 0);
    /* and the worker runs the next graph */
    random_dag(&the_graph, 100, 2, 4);
    CHECK_OK(strata_worker_run_chip(w, h, NULL, NULL));
    CHECK_EQ_U64(atomic_load(&ran), 100);
    check_order(&the_graph);
    strata_worker_destroy(w);
}

TEST_CASE(a_failure_cancels_what_follows)
{
    strata_handle h;
    strata_worker *w = host_graph_worker(2, "host_build_graph", &h);
    /* a chain 0 -> 1 -> ... -> 9; task 4 fails: 5..9 never run */
    random_dag(&the_graph, 10, 0, 1);
    for (uint32_t k = 0; k + 1 < 10; k++) {
        the_graph.from[k] = k;
        the_graph.to[k] = k + 1;
    }
    the_graph.ne = 9;
    the_graph.fail_task = 4;
    atomic_store(&ran, 0);
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, NULL), STRATA_ETASK);
    CHECK_ERROR_HAS("kernel func_id 0");
    CHECK_EQ_U64(atomic_load(&ran), 5);
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(w, &st));
    CHECK_EQ_U64(st.tasks_failed, 1);
    CHECK_EQ_U64(st.tasks_canceled, 5);
    strata_worker_destroy(w);
}

TEST_CASE(explicit_edges_need_host_build_graph)
{
    strata_handle h;
    strata_worker *w = host_graph_worker(1, "tensormap_and_ringbuffer", &h);
    random_dag(&the_graph, 3, 1, 1);
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, NULL), STRATA_EINVAL);
    CHECK_ERROR_HAS("runs runtime tensormap_and_ringbuffer, which orders tasks by their tensors' tags; explicit edges "
                    "need runtime \"host_build_graph\"");
    strata_worker_destroy(w);
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 2);
    cfg.runtime = "aicpu_build_graph";
    CHECK_STATUS(strata_worker_create(&cfg, &w), STRATA_ENOENT);
    CHECK_ERROR_HAS("available: tensormap_and_ringbuffer, host_build_graph");
}

TEST_MAIN(CASE(random_dags_follow_their_edges), CASE(refusals_run_nothing), CASE(a_failure_cancels_what_follows),
          CASE(explicit_edges_need_host_build_graph))
