/* The trace file (core/trace.h, include/strata/trace.h).
 *
 * One process-wide sink: a descriptor, a buffer, and a mutex. Events are
 * formatted into the buffer under the mutex and written at unlock, at event
 * boundaries only, so the file is a valid prefix of the array at every moment
 * (viewers accept an array without its closing bracket: a killed process
 * leaves a readable file). Memory is bounded by the buffer, whatever the
 * number of events. */
#define _GNU_SOURCE
#include "core/trace.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/status.h"
#include "core/sys.h"
#include "strata/trace.h"

#define SINK_BUFFER (64u * 1024u)
#define SINK_FLUSH  (32u * 1024u)   /* written at unlock once this much waits (and at every run's end) */
#define SINK_EVENT  (4u * 1024u)    /* room kept for one event: the buffer goes out between events only */

_Atomic uint32_t strata__trace_open_word;

static struct {
    pthread_mutex_t lock;
    int             fd;          /* -1: none open */
    pid_t           owner;       /* the process that opened it */
    char           *path;
    uint64_t        epoch;
    bool            first;       /* no event written yet (no comma before the next) */
    bool            from_env;    /* opened for STRATA_TRACE (closed at exit) */
    bool            env_read;
    bool            atexit_set;
    int             write_errno; /* the first failed write, reported at end */
    char            buf[SINK_BUFFER];
    size_t          len;
} sink = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1};

static _Atomic uint32_t next_track = 0, next_source = 1;

uint64_t strata__trace_epoch(void)
{
    return sink.epoch;   /* read under the lock by every caller that matters */
}

uint32_t strata__trace_new_tracks(uint32_t n)
{
    /* relaxed: a counter. A range never straddles the end: it starts over
       (tracks of workers long gone are named again by whoever takes them). */
    for (;;) {
        uint32_t first = strata__load_relaxed(&next_track);
        uint32_t at = first % STRATA__TRACE_TRACKS;
        uint32_t next = at + n <= STRATA__TRACE_TRACKS ? first + n : first + (STRATA__TRACE_TRACKS - at) + n;
        uint32_t start = at + n <= STRATA__TRACE_TRACKS ? at : 0;
        if (atomic_compare_exchange_weak_explicit(&next_track, &first, next, memory_order_relaxed,
                                                  memory_order_relaxed))
            return start;
    }
}

uint32_t strata__trace_new_source(void)
{
    for (;;) {   /* relaxed: a counter; 16 bits, never 0 (0 means "none") */
        uint32_t s = strata__fetch_add_relaxed(&next_source, 1) & 0xffffu;
        if (s)
            return s;
    }
}

static void sink_write_out(void)
{
    if (sink.write_errno) {   /* after a failed write the file ends there: nothing half-written follows */
        sink.len = 0;
        return;
    }
    size_t off = 0;
    while (off < sink.len) {
        ssize_t w = write(sink.fd, sink.buf + off, sink.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (sink.write_errno == 0)
                sink.write_errno = w < 0 ? errno : EIO;
            break;   /* the trace loses this much; the run goes on */
        }
        off += (size_t)w;
    }
    sink.len = 0;
}

/* Append formatted text; an event longer than the buffer is cut (names and
   args are short). */
static void sink_printf(const char *fmt, ...) STRATA__PRINTF(1, 2);
static void sink_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(sink.buf + sink.len, SINK_BUFFER - sink.len, fmt, ap);
    va_end(ap);
    if (n > 0)
        sink.len += (size_t)n < SINK_BUFFER - sink.len ? (size_t)n : SINK_BUFFER - sink.len - 1;
}

/* Append s as the inside of a JSON string. */
static void sink_escaped(const char *s)
{
    for (; *s; s++) {
        if (SINK_BUFFER - sink.len < 64)
            return;   /* a name longer than an event's room: cut (the buffer goes out between events) */
        unsigned char ch = (unsigned char)*s;
        if (ch >= 0x20 && ch != '"' && ch != '\\') {
            sink.buf[sink.len++] = (char)ch;
        } else if (ch == '"' || ch == '\\') {
            sink.buf[sink.len++] = '\\';
            sink.buf[sink.len++] = (char)ch;
        } else {
            static const char hex[] = "0123456789abcdef";
            memcpy(sink.buf + sink.len, "\\u00", 4);
            sink.buf[sink.len + 4] = hex[ch >> 4];
            sink.buf[sink.len + 5] = hex[ch & 15];
            sink.len += 6;
        }
    }
}

/* Appending without printf: a trace event is formatted per task, and
   vsnprintf was most of a traced task's cost. Callers keep room (an event's
   fixed part is below 256 bytes; sink_escaped and the args check their own). */

static void put_lit(const char *s, size_t n)
{
    memcpy(sink.buf + sink.len, s, n);
    sink.len += n;
}
#define PUT(lit) put_lit(lit, sizeof lit - 1)

/* two digits per division: timestamps, track and flow ids have 10 to 16 */
static const char digit_pairs[201] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                     "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                     "8081828384858687888990919293949596979899";

static void put_u64(uint64_t v)
{
    char tmp[20];
    int n = 20;
    while (v >= 100) {
        unsigned pair = (unsigned)(v % 100) * 2;
        v /= 100;
        tmp[--n] = digit_pairs[pair + 1];
        tmp[--n] = digit_pairs[pair];
    }
    if (v >= 10) {
        tmp[--n] = digit_pairs[v * 2 + 1];
        tmp[--n] = digit_pairs[v * 2];
    } else {
        tmp[--n] = (char)('0' + v);
    }
    memcpy(sink.buf + sink.len, tmp + n, (size_t)(20 - n));
    sink.len += (size_t)(20 - n);
}

static void put_i64(int64_t v)
{
    if (v < 0) {
        sink.buf[sink.len++] = '-';
        put_u64((uint64_t)0 - (uint64_t)v);
    } else {
        put_u64((uint64_t)v);
    }
}

/* ns as microseconds with three decimals: exact to the nanosecond */
static void put_us(uint64_t ns)
{
    put_u64(ns / 1000u);
    unsigned frac = (unsigned)(ns % 1000u);
    sink.buf[sink.len++] = '.';
    sink.buf[sink.len++] = (char)('0' + frac / 100);
    sink.buf[sink.len++] = (char)('0' + frac / 10 % 10);
    sink.buf[sink.len++] = (char)('0' + frac % 10);
}

/* Every event starts here: the buffer goes to the file now if an event might
   not fit, so the file only ever ends between two events. */
static void event_open(void)
{
    if (SINK_BUFFER - sink.len < SINK_EVENT)
        sink_write_out();
    if (!sink.first)
        PUT(",\n");
    sink.buf[sink.len++] = '{';
    sink.first = false;
}

static void put_common(const char *ph, int pid, uint32_t track, uint64_t ts_ns, const char *name)
{
    event_open();
    PUT("\"ph\":\"");
    put_lit(ph, strlen(ph));
    PUT("\",\"pid\":");
    put_i64(pid);
    PUT(",\"tid\":");
    put_i64((int64_t)pid * STRATA__TRACE_TRACKS + track);
    PUT(",\"ts\":");
    put_us(ts_ns);
    PUT(",\"name\":\"");
    sink_escaped(name);
    PUT("\"");
}

static void put_args(const char *args)
{
    if (args && args[0]) {
        size_t n = strlen(args);
        if (n + 64 > SINK_BUFFER - sink.len)
            return;   /* longer than an event's room: left out (args are short) */
        PUT(",\"args\":{");
        put_lit(args, n);
        PUT("}");
    }
}

/* The path with each "%p" replaced by this process's pid (malloc'd). */
static char *expand_path(const char *path)
{
    char pid[16];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    size_t n = 1;
    for (const char *s = path; *s; s++)
        n += s[0] == '%' && s[1] == 'p' ? strlen(pid) : 1;
    char *out = malloc(n), *o = out;
    for (const char *s = path; out && *s; s++) {
        if (s[0] == '%' && s[1] == 'p') {
            o += sprintf(o, "%s", pid);
            s++;
        } else {
            *o++ = *s;
        }
    }
    if (out)
        *o = '\0';
    return out;
}

/* The fork handlers (registered at the first use): a fork waits for a drain
   in progress (the lock is held across it, and released on both sides by the
   thread that forks); the child has no trace and its copy of the file closed
   (a child never writes its parent's file). Lock order: a fork made under
   the node workers' list lock (node/live.c) takes this one inside it, and
   nothing takes that list's lock while holding this one. */
static void fork_prepare(void)
{
    pthread_mutex_lock(&sink.lock);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&sink.lock);
}

static void fork_child(void)
{
    pthread_mutex_unlock(&sink.lock);   /* taken by this thread in fork_prepare */
    if (sink.fd >= 0)
        close(sink.fd);
    sink.fd = -1;
    free(sink.path);
    sink.path = NULL;
    sink.len = 0;
    sink.from_env = false;
    sink.env_read = true;   /* the parent's STRATA_TRACE is the parent's */
    strata__store_relaxed(&strata__trace_open_word, 0);
}

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void register_fork_handlers(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

static int open_locked(const char *given, const char *what)
{
    char *copy = expand_path(given);
    if (!copy)
        return strata__fail(STRATA_ENOMEM, "%s: out of host memory", what);
    int fd = open(copy, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int rc = strata__fail(STRATA_ESYS, "%s: cannot write the trace file '%s': %s", what, copy, strerror(errno));
        free(copy);
        return rc;
    }
    sink.fd = fd;
    sink.owner = strata__self_pid();
    sink.path = copy;
    sink.epoch++;
    sink.first = true;
    sink.len = 0;
    sink.write_errno = 0;
    sink_printf("[\n");
    /* release: a writer that sees the word open takes the lock and finds the file */
    strata__store_release(&strata__trace_open_word, 1);
    return STRATA_OK;
}

/* Write the closing bracket and close; the first write error, if any. */
static int close_locked(void)
{
    strata__store_release(&strata__trace_open_word, 0);
    sink_printf("\n]\n");
    sink_write_out();
    int err = sink.write_errno;
    char *path = sink.path;
    close(sink.fd);
    sink.fd = -1;
    sink.path = NULL;
    int rc = err ? strata__fail(STRATA_ESYS, "strata_trace_end: writing the trace file '%s' failed: %s; it lacks "
                                             "events", path, strerror(err))
                 : STRATA_OK;
    free(path);
    return rc;
}

static void close_at_exit(void)
{
    pthread_mutex_lock(&sink.lock);
    if (sink.fd >= 0 && sink.owner == strata__self_pid() && close_locked() != STRATA_OK)
        strata__log(STRATA__LOG_ERROR, "%s", strata_last_error());   /* STRATA_TRACE's: no caller to tell */
    pthread_mutex_unlock(&sink.lock);
}

int strata__trace_from_env(void)
{
    pthread_once(&fork_once, register_fork_handlers);
    pthread_mutex_lock(&sink.lock);
    int rc = STRATA_OK;
    if (!sink.env_read) {
        const char *path = getenv("STRATA_TRACE");
        if (path && path[0] && sink.fd < 0) {
            rc = open_locked(path, "STRATA_TRACE");
            if (rc == STRATA_OK) {
                sink.from_env = true;
                if (!sink.atexit_set)
                    atexit(close_at_exit);
                sink.atexit_set = true;
            }
        }
        sink.env_read = rc == STRATA_OK;   /* a path that failed fails every create, as any bad value does */
    }
    pthread_mutex_unlock(&sink.lock);
    return rc;
}

void strata__trace_env_off(void)
{
    pthread_mutex_lock(&sink.lock);
    sink.env_read = true;
    pthread_mutex_unlock(&sink.lock);
}

int strata_trace_begin(const char *path)
{
    strata__clear_error();
    if (path == NULL || path[0] == '\0')
        return strata__fail(STRATA_EINVAL, "strata_trace_begin: path is %s", path ? "empty" : "NULL");
    pthread_once(&fork_once, register_fork_handlers);
    pthread_mutex_lock(&sink.lock);
    int rc;
    if (sink.fd >= 0 && sink.owner == strata__self_pid())
        rc = strata__fail(STRATA_ESTATE, "strata_trace_begin: a trace is open already (into '%s'%s); end it "
                          "first (strata_trace_end)", sink.path, sink.from_env ? ", from STRATA_TRACE" : "");
    else {
        if (sink.fd >= 0) {   /* a forked copy of another process's sink: drop it, never write it */
            close(sink.fd);
            free(sink.path);
            sink.fd = -1;
            sink.path = NULL;
        }
        rc = open_locked(path, "strata_trace_begin");
    }
    sink.env_read = true;   /* a trace begun by the program wins over STRATA_TRACE */
    pthread_mutex_unlock(&sink.lock);
    return rc;
}

int strata_trace_end(void)
{
    strata__clear_error();
    pthread_mutex_lock(&sink.lock);
    int rc = STRATA_OK;
    if (sink.fd >= 0 && sink.owner == strata__self_pid())
        rc = close_locked();
    sink.from_env = false;
    pthread_mutex_unlock(&sink.lock);
    return rc;
}

bool strata__trace_lock(void)
{
    if (!strata__trace_active())
        return false;
    pthread_mutex_lock(&sink.lock);
    if (sink.fd >= 0 && sink.owner == strata__self_pid())
        return true;
    pthread_mutex_unlock(&sink.lock);
    return false;
}

void strata__trace_unlock(void)
{
    if (sink.len >= SINK_FLUSH)
        sink_write_out();   /* whole events only: the file is a valid prefix at every moment */
    pthread_mutex_unlock(&sink.lock);
}

void strata__trace_flush(void)
{
    if (sink.len > 0)
        sink_write_out();
}

void strata__trace_process_name(int pid, const char *name, int sort_index)
{
    event_open();
    sink_printf("\"ph\":\"M\",\"pid\":%d,\"name\":\"process_name\",\"args\":{\"name\":\"", pid);
    sink_escaped(name);
    sink_printf("\"}},\n{\"ph\":\"M\",\"pid\":%d,\"name\":\"process_sort_index\",\"args\":{\"sort_index\":%d}}", pid,
                sort_index);
}

void strata__trace_thread_name(int pid, uint32_t track, const char *name, int sort_index)
{
    int64_t tid = (int64_t)pid * STRATA__TRACE_TRACKS + track;
    event_open();
    sink_printf("\"ph\":\"M\",\"pid\":%d,\"tid\":%" PRId64 ",\"name\":\"thread_name\",\"args\":{\"name\":\"", pid,
                tid);
    sink_escaped(name);
    sink_printf("\"}},\n{\"ph\":\"M\",\"pid\":%d,\"tid\":%" PRId64 ",\"name\":\"thread_sort_index\","
                "\"args\":{\"sort_index\":%d}}", pid, tid, sort_index);
}

void strata__trace_slice(int pid, uint32_t track, uint64_t begin_ns, uint64_t end_ns, const char *name,
                         const char *args)
{
    uint64_t dur = end_ns > begin_ns ? end_ns - begin_ns : 0;
    put_common("X", pid, track, begin_ns, name);
    PUT(",\"dur\":");
    put_us(dur);
    PUT(",\"cat\":\"strata\"");
    put_args(args);
    PUT("}");
}

void strata__trace_unended(int pid, uint32_t track, uint64_t begin_ns, const char *name, const char *args)
{
    put_common("B", pid, track, begin_ns, name);
    PUT(",\"cat\":\"strata\"");
    put_args(args);
    PUT("}");
}

void strata__trace_instant(int pid, uint32_t track, uint64_t ts_ns, const char *name, const char *args)
{
    put_common("i", pid, track, ts_ns, name);
    PUT(",\"s\":\"t\",\"cat\":\"strata\"");
    put_args(args);
    PUT("}");
}

void strata__trace_counter(int pid, uint64_t ts_ns, const char *name, uint64_t value)
{
    put_common("C", pid, 0, ts_ns, name);
    PUT(",\"args\":{\"value\":");
    put_u64(value);
    PUT("}}");
}

void strata__trace_flow(int pid, uint32_t track, uint64_t ts_ns, const char *name, uint64_t id, bool start)
{
    put_common(start ? "s" : "f", pid, track, ts_ns, name);
    PUT(",\"cat\":\"strata\",\"id\":");
    put_u64(id);
    if (!start)
        PUT(",\"bp\":\"e\"");
    PUT("}");
}
