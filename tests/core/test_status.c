/* core.status: status names, the docs table, the per-thread message. */
#include "harness.h"

#include <pthread.h>

#include "core/status.h"
#include "core/status_list.h"

TEST_CASE(names)
{
    CHECK(strcmp(strata_status_name(STRATA_OK), "STRATA_OK") == 0);
    CHECK(strcmp(strata_status_name(STRATA_ECHILD), "STRATA_ECHILD") == 0);
    CHECK(strcmp(strata_status_name(STRATA_ESYS), "STRATA_ESYS") == 0);
    CHECK(strcmp(strata_status_name(STRATA_EINTR), "STRATA_EINTR") == 0);
    CHECK(strcmp(strata_status_name(-13), "STRATA_UNKNOWN") == 0);
    CHECK(strcmp(strata_status_name(5), "STRATA_UNKNOWN") == 0);
}

/* docs/errors.md lists exactly the library's codes, values and meanings, in order. */
TEST_CASE(docs_table_matches)
{
    FILE *f = fopen(STRATA_SOURCE_DIR "/docs/errors.md", "r");
    CHECK(f != NULL);
    static const struct { const char *name; int value; const char *text; } list[] = {
#define ROW(n, v, t) {#n, v, t},
        STRATA_STATUS_MAP(ROW)
#undef ROW
    };
    size_t next = 0;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char name[64], text[256];
        int value;
        if (sscanf(line, "| %63[A-Z_] | %d | %255[^|]|", name, &value, text) != 3)
            continue;
        if (strncmp(name, "STRATA_", 7) != 0)
            continue;
        size_t n = strlen(text);
        while (n && text[n - 1] == ' ')
            text[--n] = '\0';
        CHECK(next < sizeof list / sizeof list[0]);
        if (strcmp(name, list[next].name) != 0 || value != list[next].value || strcmp(text, list[next].text) != 0)
            test_fail(__FILE__, __LINE__, "docs/errors.md row %zu is '%s %d %s', the library says '%s %d %s'",
                      next, name, value, text, list[next].name, list[next].value, list[next].text);
        next++;
    }
    fclose(f);
    CHECK_EQ_U64(next, sizeof list / sizeof list[0]);
}

static void *other_thread(void *arg)
{
    (void)arg;
    /* A new thread starts with an empty message, whatever the others hold. */
    if (strata_last_error()[0] != '\0')
        return (void *)1;
    strata__fail(STRATA_EINVAL, "message of the other thread");
    return NULL;
}

TEST_CASE(message_per_thread)
{
    CHECK(strata_last_error() != NULL);
    CHECK(strata_last_error()[0] == '\0');
    CHECK_STATUS(strata__fail(STRATA_ERING, "main %d", 42), STRATA_ERING);
    CHECK(strcmp(strata_last_error(), "main 42") == 0);
    pthread_t t;
    void *ret;
    CHECK(pthread_create(&t, NULL, other_thread, NULL) == 0);
    CHECK(pthread_join(t, &ret) == 0);
    CHECK(ret == NULL);
    CHECK(strcmp(strata_last_error(), "main 42") == 0);
    strata__clear_error();
    CHECK(strata_last_error()[0] == '\0');
}

/* Messages are never truncated, however long. */
TEST_CASE(long_message_kept_whole)
{
    size_t n = 100000;
    char *big = malloc(n + 1);
    CHECK(big != NULL);
    memset(big, 'x', n);
    big[n] = '\0';
    strata__fail(STRATA_ETASK, "start %s end", big);
    CHECK_EQ_U64(strlen(strata_last_error()), n + 10);
    CHECK(strncmp(strata_last_error(), "start ", 6) == 0);
    CHECK(strcmp(strata_last_error() + n + 6, " end") == 0);
    strata__error_prefix(STRATA_ETASK, "outer context");
    CHECK(strncmp(strata_last_error(), "outer context: start ", 21) == 0);
    free(big);
}

/* A public call that succeeds clears the message left by a failed one. */
TEST_CASE(success_clears_message)
{
    strata_worker *w = NULL;
    CHECK_STATUS(strata_worker_create(NULL, &w), STRATA_EINVAL);
    CHECK_ERROR_HAS("cfg is NULL");
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 2);
    CHECK_OK(strata_worker_create(&cfg, &w));
    CHECK(strata_last_error()[0] == '\0');
    strata_worker_destroy(w);
}

TEST_CASE(first_failure_wins)
{
    strata__failure f = {0};
    CHECK_EQ_U64(strata__failure_raise(&f), 0);
    strata__failure_set(&f, STRATA_ETASK, "first %d", 1);
    strata__failure_set(&f, STRATA_ERING, "second");
    CHECK_EQ_U64(strata__failure_status(&f), (uint64_t)(int64_t)STRATA_ETASK);
    strata__clear_error();
    CHECK_STATUS(strata__failure_raise(&f), STRATA_ETASK);
    CHECK(strcmp(strata_last_error(), "first 1") == 0);
    strata__failure_reset(&f);
    CHECK_EQ_U64(strata__failure_status(&f), 0);
}

TEST_MAIN(CASE(names), CASE(docs_table_matches), CASE(message_per_thread), CASE(long_message_kept_whole),
          CASE(success_clears_message), CASE(first_failure_wins))
