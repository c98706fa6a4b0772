/* omp_sections: which depend clauses on array sections of one array order two
 * OpenMP tasks, under the runtime this is built against (libgomp with gcc,
 * LLVM libomp with clang; bench/peers/build.sh builds both).
 *
 * The OpenMP standard orders two sibling tasks whose depend list items are the
 * same storage, and leaves sections that overlap without being identical
 * unspecified. omp_dag --layout views names every datum as a section of one
 * array and relies on what the runtimes do there; this program shows it. Each
 * case creates a writer task (depend out: FIRST) and then a reader task
 * (depend in: SECOND) in a team of two threads. The writer waits up to 200 ms
 * for the reader to start; the reader records whether the writer had finished.
 * "ordered" means the runtime held the reader back until the writer ended.
 *
 *   omp_sections_gomp; omp_sections_llvm     (no options)
 *
 * Exit status 0 whatever the answers; 1 when the team has fewer than two
 * threads (an unordered pair could then run in order by chance). */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include <omp.h>

#define SIDE 64   /* the matrix: SIDE x SIDE bytes, the vector: SIDE * SIDE */

static unsigned char g_array[SIDE * SIDE];
static _Atomic bool  g_writer_done, g_reader_started;
static bool          g_reader_saw_writer_done;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void writer_body(void)
{
    double until = now_s() + 0.2;
    while (!atomic_load(&g_reader_started) && now_s() < until)
        ;
    atomic_store(&g_writer_done, true);
}

static void reader_body(void)
{
    atomic_store(&g_reader_started, true);
    g_reader_saw_writer_done = atomic_load(&g_writer_done);
}

static void reset(void)
{
    atomic_store(&g_writer_done, false);
    atomic_store(&g_reader_started, false);
    g_reader_saw_writer_done = false;
}

static void report(const char *what)
{
    printf("  %-62s %s\n", what, g_reader_saw_writer_done ? "ordered" : "NOT ordered");
}

int main(void)
{
    unsigned char (*matrix)[SIDE] = (unsigned char (*)[SIDE])g_array;
    unsigned char *a = g_array;
    (void)matrix;   /* gcc 12 does not count a use in a depend clause */
    (void)a;
    int team = 0;
#ifdef __clang__
    printf("omp_sections: clang %d.%d, LLVM libomp, _OPENMP %d\n", __clang_major__, __clang_minor__, _OPENMP);
#else
    printf("omp_sections: gcc %d.%d, libgomp, _OPENMP %d\n", __GNUC__, __GNUC_MINOR__, _OPENMP);
#endif
    printf("  writer depend(out: FIRST), then reader depend(in: SECOND):\n");
#pragma omp parallel num_threads(2)
#pragma omp single
    {
        team = omp_get_num_threads();

        reset();
#pragma omp task depend(out: a[64:64])
        writer_body();
#pragma omp task depend(in: a[0:4096])
        reader_body();
#pragma omp taskwait
        report("a[64:64], then a[0:4096] (overlap, different starts)");

        reset();
#pragma omp task depend(out: a[0:4096])
        writer_body();
#pragma omp task depend(in: a[64:64])
        reader_body();
#pragma omp taskwait
        report("a[0:4096], then a[64:64] (inside it, different starts)");

        reset();
#pragma omp task depend(out: a[0:64])
        writer_body();
#pragma omp task depend(in: a[0:4096])
        reader_body();
#pragma omp taskwait
        report("a[0:64], then a[0:4096] (same start, different lengths)");

        reset();
#pragma omp task depend(out: matrix[8:8][8:8])
        writer_body();
#pragma omp task depend(in: matrix[8:8][8:8])
        reader_body();
#pragma omp taskwait
        report("m[8:8][8:8], then m[8:8][8:8] (the same tile)");

        reset();
#pragma omp task depend(out: matrix[8:8][8:8])
        writer_body();
#pragma omp task depend(in: matrix[12:4][8:8])
        reader_body();
#pragma omp taskwait
        report("m[8:8][8:8], then m[12:4][8:8] (its lower half)");

        reset();
#pragma omp task depend(out: matrix[8][8])
        writer_body();
#pragma omp task depend(in: matrix[8:8][8:8])
        reader_body();
#pragma omp taskwait
        report("m[8][8], then m[8:8][8:8] (the tile's first element, the tile)");
    }
    if (team < 2) {
        fprintf(stderr, "omp_sections: the team has %d thread(s), 2 needed\n", team);
        return 1;
    }
    return 0;
}
