/* node.adopt: memory the application mapped shared before init
 * (strata_worker_host_adopt): tasks name it as they name the shared heap, the
 * children see the parent's bytes and the parent sees theirs; private memory,
 * overlaps and adoption after init are refused with a message saying why. */
#include "node_util.h"

#include <sys/mman.h>

/* tensors[0][i] = tensors[0][i] * 2 + scalars[0] */
static int double_plus(const strata_task_args *a, void *ctx)
{
    (void)ctx;
    uint64_t *p = u64_of(&a->tensors[0]);
    for (uint64_t i = 0; i < a->tensors[0].shape[0]; i++)
        p[i] = p[i] * 2 + a->scalars[0];
    return 0;
}

TEST_CASE(shared_mapping_reaches_the_children)
{
    size_t len = 1 << 16;
    uint64_t *shared = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(shared != MAP_FAILED);
    strata_worker *w = node_worker(0, 2, STRATA_ON_DEATH_RESTART, NULL);
    sub_chain j = {.scalar = 1};
    CHECK_OK(strata_worker_register_sub(w, double_plus, NULL, &j.sub));
    CHECK_OK(strata_worker_host_adopt(w, shared, len));
    CHECK_OK(strata_worker_init(w));
    for (int i = 0; i < 8; i++)
        shared[100 + i] = (uint64_t)i;
    uint64_t shape[1] = {8};
    j.t = strata_tensor_make(shared, STRATA_U64, 1, shape);
    j.t.nbytes = len;
    j.t.offset = 100;
    for (int run = 0; run < 3; run++)
        CHECK_OK(strata_worker_run(w, sub_chain_orch, &j, NULL, NULL));
    for (int i = 0; i < 8; i++)
        CHECK_EQ_U64(shared[100 + i], (uint64_t)i * 8 + 7);   /* ((2i+1)*2+1)*2+1 */
    CHECK_STATUS(strata_worker_host_free(w, shared), STRATA_EINVAL);
    CHECK_ERROR_HAS("adopted");
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
    munmap(shared, len);
}

TEST_CASE(refusals_say_why)
{
    size_t len = 1 << 16;
    void *shared = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    void *private = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void *readonly = mmap(NULL, len, PROT_READ, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(shared != MAP_FAILED && private != MAP_FAILED && readonly != MAP_FAILED);
    strata_worker *w = node_worker(0, 1, STRATA_ON_DEATH_RESTART, NULL);
    CHECK_STATUS(strata_worker_host_adopt(w, private, len), STRATA_EINVAL);
    CHECK_ERROR_HAS("not all shared, writable memory");
    CHECK_STATUS(strata_worker_host_adopt(w, readonly, len), STRATA_EINVAL);
    CHECK_STATUS(strata_worker_host_adopt(w, NULL, len), STRATA_EINVAL);
    CHECK_STATUS(strata_worker_host_adopt(w, shared, 0), STRATA_EINVAL);
    void *heap;
    CHECK_OK(strata_worker_host_alloc(w, 64, &heap));
    CHECK_STATUS(strata_worker_host_adopt(w, heap, 64), STRATA_EINVAL);
    CHECK_ERROR_HAS("own shared heap");
    /* another worker's heap: its buffers are dropped in this worker's children */
    strata_worker *other = node_worker(0, 1, STRATA_ON_DEATH_RESTART, NULL);
    void *theirs;
    CHECK_OK(strata_worker_host_alloc(other, 64, &theirs));
    CHECK_STATUS(strata_worker_host_adopt(w, theirs, 64), STRATA_EINVAL);
    CHECK_ERROR_HAS("the shared heap of a Strata worker");
    strata_worker_destroy(other);
    CHECK_OK(strata_worker_host_adopt(w, shared, len));
    CHECK_STATUS(strata_worker_host_adopt(w, (char *)shared + 4096, 4096), STRATA_EINVAL);
    CHECK_ERROR_HAS("overlaps one adopted before");
    CHECK_OK(strata_worker_init(w));
    CHECK_STATUS(strata_worker_host_adopt(w, readonly, len), STRATA_ESTATE);
    CHECK_ERROR_HAS("before init");
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 2);
    CHECK_OK(strata_worker_create(&cfg, &w));
    CHECK_STATUS(strata_worker_host_adopt(w, shared, len), STRATA_EINVAL);
    CHECK_ERROR_HAS("level-2");
    strata_worker_destroy(w);
    munmap(shared, len);
    munmap(private, len);
    munmap(readonly, len);
}

TEST_MAIN(CASE(shared_mapping_reaches_the_children), CASE(refusals_say_why))
