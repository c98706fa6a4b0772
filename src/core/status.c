/* Status names and the per-thread error message.
 *
 * Global state: one pthread key whose destructor frees a thread's message buffer
 * when the thread exits; created once with pthread_once. */
#include "core/status.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status_list.h"

#define CHECK_ENUM(name, value, text) _Static_assert(name == value, #name " differs from the status list");
STRATA_STATUS_MAP(CHECK_ENUM)
#undef CHECK_ENUM

const char *strata_status_name(int status)
{
    switch (status) {
#define NAME_CASE(name, value, text) case value: return #name;
    STRATA_STATUS_MAP(NAME_CASE)
#undef NAME_CASE
    default: return "STRATA_UNKNOWN";
    }
}

bool strata__is_status(int status)
{
    switch (status) {
#define IS_CASE(name, value, text) case value: return true;
    STRATA_STATUS_MAP(IS_CASE)
#undef IS_CASE
    default: return false;
    }
}

typedef struct message_buffer {
    char  *text;
    size_t cap;
} message_buffer;

/* initial-exec: every public call clears the message, so its address must not
   cost a __tls_get_addr call; 16 bytes fit the static TLS that the C library
   keeps for libraries loaded with dlopen (a Python facade does that). */
static _Thread_local message_buffer tls_message __attribute__((tls_model("initial-exec")));
static pthread_key_t message_key;
static pthread_once_t message_key_once = PTHREAD_ONCE_INIT;

static void free_message(void *p)
{
    message_buffer *m = p;
    free(m->text);
    m->text = NULL;
    m->cap = 0;
}

static void make_message_key(void)
{
    /* If this fails the buffer of an exiting thread is not freed: a bounded leak
       per thread, never a wrong message. */
    (void)pthread_key_create(&message_key, free_message);
}

/* Replace this thread's message with `len` bytes of `text`. Out of memory keeps a
   fixed text so a caller always reads something true. */
static void set_message(const char *text, size_t len)
{
    message_buffer *m = &tls_message;
    if (len + 1 > m->cap) {
        size_t cap = m->cap ? m->cap : 256;
        while (cap < len + 1)
            cap *= 2;
        char *p = realloc(m->text, cap);
        if (p == NULL) {
            static const char oom[] = "out of memory while recording an error message";
            size_t n = m->cap ? m->cap - 1 : 0;
            if (n) {
                n = n < sizeof oom - 1 ? n : sizeof oom - 1;
                memcpy(m->text, oom, n);
                m->text[n] = '\0';
            }
            return;
        }
        if (m->text == NULL) {
            pthread_once(&message_key_once, make_message_key);
            (void)pthread_setspecific(message_key, m);
        }
        m->text = p;
        m->cap = cap;
    }
    memcpy(m->text, text, len);
    m->text[len] = '\0';
}

const char *strata_last_error(void)
{
    return tls_message.text ? tls_message.text : "";
}

void strata__clear_error(void)
{
    if (tls_message.text)
        tls_message.text[0] = '\0';
}

char *strata__vformat(const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (s)
        vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

char *strata__format(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = strata__vformat(fmt, ap);
    va_end(ap);
    return s;
}

int strata__failv(int status, const char *fmt, va_list ap)
{
    int saved = errno;
    char *s = strata__vformat(fmt, ap);
    if (s) {
        set_message(s, strlen(s));
        free(s);
    } else {
        set_message(fmt, strlen(fmt));
    }
    errno = saved;
    return status;
}

int strata__fail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    strata__failv(status, fmt, ap);
    va_end(ap);
    return status;
}

int strata__fail_sys(int err, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    char *what = strata__vformat(fmt, ap);
    va_end(ap);
    strata__fail(STRATA_ESYS, "%s failed: %s", what ? what : fmt, strerror(err));
    free(what);
    errno = saved;
    return STRATA_ESYS;
}

int strata__error_prefix(int status, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    char *ctx = strata__vformat(fmt, ap);
    va_end(ap);
    if (ctx) {
        char *s = strata__format("%s: %s", ctx, strata_last_error());
        if (s) {
            set_message(s, strlen(s));
            free(s);
        }
        free(ctx);
    }
    errno = saved;
    return status;
}

void strata__failure_reset(strata__failure *f)
{
    free(f->message);
    f->message = NULL;
    atomic_store_explicit(&f->published, 0, memory_order_relaxed);
    atomic_store_explicit(&f->status, 0, memory_order_relaxed);
}

static int failure_claim(strata__failure *f, int status)
{
    int expected = 0;
    /* relaxed on success is enough: the message is published separately through
       `published` (release), and losers only need to know they lost. */
    return atomic_compare_exchange_strong_explicit(&f->status, &expected, status,
                                                   memory_order_relaxed, memory_order_relaxed);
}

int strata__failure_set(strata__failure *f, int status, const char *fmt, ...)
{
    if (!failure_claim(f, status))
        return status;
    va_list ap;
    va_start(ap, fmt);
    f->message = strata__vformat(fmt, ap);
    va_end(ap);
    /* release: publishes message; pairs with the acquire in strata__failure_raise(). */
    atomic_store_explicit(&f->published, 1, memory_order_release);
    return status;
}

int strata__failure_set_from_error(strata__failure *f, int status)
{
    if (!failure_claim(f, status))
        return status;
    const char *m = strata_last_error();
    f->message = strata__format("%s", m[0] ? m : strata_status_name(status));
    atomic_store_explicit(&f->published, 1, memory_order_release);
    return status;
}

int strata__failure_raise(strata__failure *f)
{
    int status = atomic_load_explicit(&f->status, memory_order_relaxed);
    if (status == 0)
        return 0;
    /* acquire: pairs with the release in strata__failure_set(); the caller has
       waited for every failing thread, so `published` is already 1. */
    if (atomic_load_explicit(&f->published, memory_order_acquire) && f->message)
        return strata__fail(status, "%s", f->message);
    return strata__fail(status, "%s (no message: out of memory while recording it)",
                        strata_status_name(status));
}
