/* node.groups: groups of chip tasks and of SUB tasks: one node of the dependency
 * graph whose members start together. */
#include "node_util.h"

/* A rendezvous through shared host memory: flags[me] = 1, then wait (bounded)
   until every flag of the group is 1. It can only succeed if all members run at
   the same time. scalars: [0] me, [1] members. Fails (returns 1) on timeout. */
static int rendezvous(uint64_t *flags, uint64_t me, uint64_t members)
{
    __atomic_store_n(&flags[me], 1, __ATOMIC_RELEASE);
    uint64_t deadline = test_now_ns() + 10000000000ull;
    for (;;) {
        uint64_t seen = 0;
        for (uint64_t k = 0; k < members; k++)
            seen += __atomic_load_n(&flags[k], __ATOMIC_ACQUIRE);
        if (seen == members)
            return 0;
        if (test_now_ns() > deadline)
            return 1;
        sleep_ms(1);
    }
}

/* in-core kernel: rendezvous on tensors[1], then out[0] = me + 100 */
static int meet_kernel(const strata_task_args *a)
{
    if (rendezvous(u64_of(&a->tensors[1]), a->scalars[0], a->scalars[1]))
        return 5;
    u64_of(&a->tensors[0])[0] = a->scalars[0] + 100;
    return 0;
}

static int meet_chip_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    strata_tag tags[2] = {STRATA_OUTPUT, STRATA_NO_DEP};
    return strata_chip_submit(o, 0, &(strata_task_args){args->tensors, tags, 2, args->scalars, 2});
}

static int meet_sub(const strata_task_args *a, void *ctx)
{
    (void)ctx;
    if (rendezvous(u64_of(&a->tensors[1]), a->scalars[0], a->scalars[1]))
        return 5;
    if (a->scalars[2])
        return 3;   /* the member told to fail, after meeting the others */
    u64_of(&a->tensors[0])[0] = a->scalars[0] + 100;
    return 0;
}


typedef struct rig {
    strata_worker *w;
    strata_handle  meet_chip, meet, sum;
    strata_tensor  out[4], flags, total;
    uint64_t      *flag_words, *total_word;
    int            workers[4];
    uint32_t       members;
    bool           fail_one;
} rig;

static rig setup(uint32_t nchips, uint32_t nsubs)
{
    rig r = {0};
    r.w = node_worker(nchips, nsubs, STRATA_ON_DEATH_RESTART, NULL);
    static const strata_kernel_entry k[] = {{0, STRATA_AIV, meet_kernel}};
    strata_chip_callable c = {"meet", meet_chip_orch, k, 1};
    CHECK_OK(strata_worker_register_chip(r.w, &c, &r.meet_chip));
    CHECK_OK(strata_worker_register_sub(r.w, meet_sub, NULL, &r.meet));
    CHECK_OK(strata_worker_register_sub(r.w, sum_sub, NULL, &r.sum));
    CHECK_OK(strata_worker_init(r.w));
    uint64_t *p;
    for (int i = 0; i < 4; i++)
        r.out[i] = host_u64(r.w, 1, &p);
    r.flags = host_u64(r.w, 4, &r.flag_words);
    r.total = host_u64(r.w, 1, &r.total_word);
    return r;
}

/* The group, then a SUB task summing its outputs (after the whole group). */
static int group_then_sum(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    rig *r = ctx;
    strata_task_args members[4];
    static strata_tensor t[4][2];
    static strata_tag tags[4][2];
    static uint64_t sc[4][3];
    for (uint32_t m = 0; m < r->members; m++) {
        t[m][0] = r->out[m];
        t[m][1] = r->flags;
        tags[m][0] = STRATA_OUTPUT;
        tags[m][1] = STRATA_NO_DEP;
        sc[m][0] = m;
        sc[m][1] = r->members;
        sc[m][2] = r->fail_one && m == 1;
        members[m] = (strata_task_args){t[m], tags[m], 2, sc[m], 3};
    }
    int rc = r->workers[0] >= 0 ? strata_submit_next_level_group(o, r->meet_chip, members, r->members, NULL, r->workers)
                                : strata_submit_sub_group(o, r->meet, members, r->members);
    strata_tensor s[5];
    strata_tag st[5];
    for (uint32_t m = 0; m < r->members; m++) {
        s[m] = r->out[m];
        st[m] = STRATA_INPUT;
    }
    s[r->members] = r->total;
    st[r->members] = STRATA_OUTPUT;
    if (rc == 0)
        rc = strata_submit_sub(o, r->sum, &(strata_task_args){s, st, r->members + 1, NULL, 0});
    return rc;
}

TEST_CASE(chip_group_starts_together)
{
    rig r = setup(2, 1);
    r.workers[0] = 0;
    r.workers[1] = 1;
    r.members = 2;
    for (int run = 0; run < 20; run++) {
        memset(r.flag_words, 0, 4 * 8);
        *r.total_word = 0;
        CHECK_OK(strata_worker_run(r.w, group_then_sum, &r, NULL, NULL));
        CHECK_EQ_U64(*r.total_word, 100 + 101);
    }
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(r.w, &st));
    CHECK_EQ_U64(st.tasks_completed, 40);   /* a group counts as one task */
    strata_worker_destroy(r.w);
}

TEST_CASE(sub_group_starts_together)
{
    rig r = setup(0, 3);
    r.workers[0] = -1;
    r.members = 2;
    for (int run = 0; run < 20; run++) {
        memset(r.flag_words, 0, 4 * 8);
        CHECK_OK(strata_worker_run(r.w, group_then_sum, &r, NULL, NULL));
        CHECK_EQ_U64(*r.total_word, 100 + 101);
    }
    strata_worker_destroy(r.w);
}

TEST_CASE(group_member_failure)
{
    rig r = setup(0, 3);
    r.workers[0] = -1;
    r.members = 2;
    r.fail_one = true;
    CHECK_STATUS(strata_worker_run(r.w, group_then_sum, &r, NULL, NULL), STRATA_ETASK);
    CHECK_ERROR_HAS("returned 3");
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(r.w, &st));
    CHECK_EQ_U64(st.tasks_failed, 1);
    CHECK_EQ_U64(st.tasks_canceled, 1);   /* the sum never ran */
    r.fail_one = false;
    memset(r.flag_words, 0, 4 * 8);
    CHECK_OK(strata_worker_run(r.w, group_then_sum, &r, NULL, NULL));
    strata_worker_destroy(r.w);
}

TEST_CASE(bad_groups)
{
    rig r = setup(2, 2);
    r.members = 2;
    r.workers[0] = 1;
    r.workers[1] = 1;
    CHECK_STATUS(strata_worker_run(r.w, group_then_sum, &r, NULL, NULL), STRATA_EINVAL);
    CHECK_ERROR_HAS("members 0 and 1 both target chip worker 1");
    r.workers[1] = 3;
    CHECK_STATUS(strata_worker_run(r.w, group_then_sum, &r, NULL, NULL), STRATA_ENOENT);
    CHECK_ERROR_HAS("worker 3 is not a chip");
    r.workers[0] = -1;
    r.members = 3;
    CHECK_STATUS(strata_worker_run(r.w, group_then_sum, &r, NULL, NULL), STRATA_EINVAL);
    CHECK_ERROR_HAS("a group of 3 members needs as many SUB workers at once; this worker has 2");
    r.members = 2;
    memset(r.flag_words, 0, 4 * 8);
    CHECK_OK(strata_worker_run(r.w, group_then_sum, &r, NULL, NULL));
    strata_worker_destroy(r.w);
}

TEST_MAIN(CASE(chip_group_starts_together), CASE(sub_group_starts_together), CASE(group_member_failure),
          CASE(bad_groups))
