#!/bin/sh
# Instructions per task of the L2 engine, counted by callgrind; optionally the
# same for the peer runtimes of bench/peers (OpenMP on libgomp and on LLVM
# libomp, StarPU).
#
#   bench/callgrind.sh [--peers DIR] [--layout buffers|views] [BUILD_DIR] [WORKLOAD...]
#
# BUILD_DIR defaults to build (e.g. /tmp/build-bench); WORKLOADs default to
# "chain cholesky16" and may be independent, chain, fanout or choleskyT.
# --peers DIR (default off) adds, for each workload, rows for the peer programs
# in DIR: libgomp (DIR/omp_dag_gomp), libomp (DIR/omp_dag_llvm), starpu-lws and
# starpu-eager (DIR/starpu_dag --sched lws|eager), built by
# bench/peers/build.sh DIR and bench/peers/build_starpu.sh DIR. The table then
# gets a first column naming the backend ("strata" for l2_overhead); a peer
# whose program is missing, or whose run fails, gets a row that says so.
# --layout views runs l2_overhead and every peer with --layout views (every
# datum a view or section of one buffer, array or partitioned handle; the rows
# are named WORKLOAD/views); buffers, the default, is each program's default.
# A --layout in L2_ARGS counts the same (the peers get it too).
#
# For each workload it runs l2_overhead twice under valgrind --tool=callgrind:
# once with only the warm-up run (--reps 0) and once with the warm-up plus REPS
# timed runs. The difference of the instruction counts (Ir) divided by the tasks
# of the timed runs is the steady-state cost per task: process start, worker
# init, buffer setup and the warm-up cancel out. Peers are measured the same
# way, with the same workload options and --threads PEER_THREADS.
#
# Columns, all Ir per task:
#   all      every instruction of every thread, spin-waits included;
#   no-wait  the same without strata__event_wait (inclusive: its polling,
#            sched_yield and futex calls): the work of submit, dependency
#            tracking, scheduling, kernel calls, completion and retirement;
#   orch     no-wait on the orchestrator thread (the one that calls run_chip);
#   lanes    no-wait on the core threads.
# valgrind runs one thread at a time, so the spin part depends on its scheduler
# and says little about real hardware; no-wait is the stable figure.
#
# Peers: all is measured, no-wait only where a wait function has a name
# ("-" otherwise), orch and lanes are "-". Idle threads are kept from spinning:
#   libgomp  OMP_WAIT_POLICY=passive GOMP_SPINCOUNT=0: a waiting thread sleeps
#            on a futex at once;
#   libomp   OMP_WAIT_POLICY=passive KMP_BLOCKTIME=0: barrier waits sleep at
#            once. A taskwait never sleeps in libomp: it polls for tasks. So
#            both OpenMP programs run pinned to one CPU (taskset; valgrind
#            runs one thread at a time anyway): libomp then counts itself
#            oversubscribed and calls sched_yield after each empty poll, which
#            lets valgrind run another thread. Unpinned, a poll loop spins
#            through whole valgrind time slices and all varies by billions of
#            Ir from run to run;
#   StarPU   Debian's StarPU 1.3 is built with STARPU_NON_BLOCKING_DRIVERS
#            (starpu_config.h): idle workers never sleep, and no variable
#            changes that; STARPU_BACKOFF_MIN/MAX (default 1/32) only set how
#            many sched_yield calls follow an empty poll. Left at defaults.
# "*" marks an all that includes such polls (libomp, StarPU).
# No peer wait function can be named: libgomp and libomp are stripped and wait
# inside GOMP_taskwait, __kmpc_omp_taskwait and __kmpc_barrier, which also run
# tasks; StarPU's empty polls take the same functions as its task pops
# (_starpu_cpu_driver_run_once, _starpu_get_worker_task). PEER_WAIT_* below
# hold the (empty) patterns, for a build where one can be named.
#
# Environment: N (20000: tasks of independent and chain, ~tasks of fanout),
# REPS (4 for those; Cholesky runs enough reps to time ~20000 tasks),
# PEER_THREADS (2: --threads of the peers), CALLGRIND_KEEP=dir keeps the
# callgrind.out files and logs there, L2_ARGS: more options of l2_overhead
# (L2_ARGS="--layout views" is the same as --layout views).
set -eu
# the cache-line probe of bench/common.c spins: its instructions would count
export BENCH_NO_CACHE_LINE=1

PEERS=
LAYOUT=
while [ $# -gt 0 ]; do
    case $1 in
        --peers | --layout)
            if [ $# -lt 2 ] || [ -z "$2" ]; then
                echo "callgrind.sh: $1 needs a value" >&2
                exit 1
            fi
            if [ "$1" = --peers ]; then PEERS=$2; else LAYOUT=$2; fi
            shift 2
            ;;
        --peers=*)
            PEERS=${1#--peers=}
            [ -n "$PEERS" ] || { echo "callgrind.sh: --peers needs a directory" >&2; exit 1; }
            shift
            ;;
        --layout=*) LAYOUT=${1#--layout=}; shift ;;
        *) break ;;
    esac
done
# a --layout in L2_ARGS (the last one) when the option is not given
if [ -z "$LAYOUT" ]; then
    prev=
    for word in ${L2_ARGS:-}; do
        [ "$prev" = --layout ] && LAYOUT=$word
        prev=$word
    done
fi
case $LAYOUT in
    '' | buffers | views) ;;
    *) echo "callgrind.sh: --layout must be buffers or views, not '$LAYOUT'" >&2; exit 1 ;;
esac
LAYOUT_ARGS=
[ -n "$LAYOUT" ] && LAYOUT_ARGS="--layout $LAYOUT"
BUILD=${1:-build}
[ $# -gt 0 ] && shift
WORKLOADS=${*:-chain cholesky16}
BIN=$BUILD/bench/l2_overhead
N=${N:-20000}
REPS=${REPS:-4}
PEER_THREADS=${PEER_THREADS:-2}
# inclusive wait/poll functions left out of the peers' no-wait (a grep -E
# pattern; empty: none can be named, no-wait is "-")
PEER_WAIT_LIBGOMP=
PEER_WAIT_LIBOMP=
PEER_WAIT_STARPU=

if [ ! -x "$BIN" ]; then
    echo "callgrind.sh: $BIN not found; build first (cmake --build $BUILD)" >&2
    exit 1
fi
for tool in valgrind callgrind_annotate; do
    command -v $tool >/dev/null || { echo "callgrind.sh: $tool not found" >&2; exit 1; }
done

if [ -n "${CALLGRIND_KEEP:-}" ]; then
    OUT=$CALLGRIND_KEEP
    mkdir -p "$OUT"
else
    OUT=$(mktemp -d)
    trap 'rm -rf "$OUT"' EXIT
fi

# run NAME ARGS...: callgrind $PROG ARGS, started through $WRAP (a command
# prefix such as "env X=1 taskset -c 0", empty for l2_overhead), one output
# file per thread ($OUT/NAME.out-01 is the main thread, the orchestrator)
PROG=$BIN
WRAP=
run() {
    name=$1
    shift
    rm -f "$OUT/$name.out" "$OUT/$name.out"-*
    # shellcheck disable=SC2086 # WRAP is a list of words
    $WRAP valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$OUT/$name.out" \
        "$PROG" --min-tasks 0 --warmup 1 "$@" >"$OUT/$name.log" 2>&1 ||
        { echo "callgrind.sh: run $name failed:" >&2; cat "$OUT/$name.log" >&2; exit 1; }
}

# total Ir of one callgrind output file
total_ir() {
    sed -n 's/^\(summary\|totals\): *\([0-9]*\).*/\2/p' "$1" | head -n 1
}

# inclusive Ir of strata__event_wait in one file (0 when it never ran there)
wait_ir() {
    callgrind_annotate --inclusive=yes --threshold=100 "$1" 2>/dev/null |
        awk '/strata__event_wait/ { gsub(",", "", $1); print $1; found = 1; exit } END { if (!found) print 0 }'
}

# sums NAME: "all nowait orch_nowait lanes_nowait" over the thread files of a run
sums() {
    all=0; nowait=0; orch=0; lanes=0
    for f in "$OUT/$1.out"-*; do
        t=$(total_ir "$f"); w=$(wait_ir "$f")
        all=$((all + t)); nowait=$((nowait + t - w))
        case $f in
            *-01) orch=$((orch + t - w)) ;;
            *) lanes=$((lanes + t - w)) ;;
        esac
    done
    echo "$all $nowait $orch $lanes"
}

# peer_sums NAME PATTERN: "all nowait" over the thread files of a peer run;
# nowait leaves out the inclusive Ir of every function whose name matches
# PATTERN (a grep -E pattern; they must not call one another), "-" when
# PATTERN is empty
peer_sums() {
    all=0; nowait=0
    for f in "$OUT/$1.out"-*; do
        t=$(total_ir "$f"); w=0
        if [ -n "$2" ]; then
            w=$(callgrind_annotate --inclusive=yes --threshold=100 "$f" 2>/dev/null |
                grep -E '^ *[0-9,]+ +\( *[0-9.]+%\) ' | grep -v 'PROGRAM TOTALS' |
                sed -e 's/ \[[^]]*\]$//' -e 's/[^ ]*:\([A-Za-z_0-9.]*\)$/\1/' |
                awk -v pat="$2" '$NF ~ pat { ir = $1; gsub(",", "", ir); w += ir } END { printf "%.0f\n", w }')
        fi
        all=$((all + t)); nowait=$((nowait + t - w))
    done
    if [ -n "$2" ]; then echo "$all $nowait"; else echo "$all -"; fi
}

# tasks of one DAG run, from a benchmark log (first result row)
log_tasks() {
    awk '$1 !~ /^(#|==)/ && NF >= 8 && $2 ~ /^[0-9]+$/ { print $2; exit }' "$1"
}

# the peers' settings
if [ -n "$PEERS" ]; then
    PIN=
    if command -v taskset >/dev/null; then
        cpu=$(taskset -pc $$ 2>/dev/null | sed -n 's/.*: *\([0-9][0-9]*\).*/\1/p')
        [ -n "$cpu" ] && PIN="taskset -c $cpu"
    fi
fi

# peer BACKEND WL REPS ARGS...: one table row for a peer runtime
peer() {
    be=$1; wl=$2; reps=$3
    shift 3
    case $be in
        libgomp) PROG=$PEERS/omp_dag_gomp; pat=$PEER_WAIT_LIBGOMP; mark=" "
            WRAP="env OMP_WAIT_POLICY=passive GOMP_SPINCOUNT=0 $PIN" ;;
        libomp) PROG=$PEERS/omp_dag_llvm; pat=$PEER_WAIT_LIBOMP; mark="*"
            WRAP="env OMP_WAIT_POLICY=passive KMP_BLOCKTIME=0 $PIN" ;;
        starpu-*) PROG=$PEERS/starpu_dag; pat=$PEER_WAIT_STARPU; mark="*"
            WRAP=
            set -- "$@" --sched "${be#starpu-}" ;;
    esac
    if [ ! -x "$PROG" ]; then
        printf "%-13s %-18s %s\n" "$be" "$wl" "not run: $PROG not found"
        return 0
    fi
    key=$(printf "%s_%s" "$be" "$wl" | tr / -)   # wl may be WORKLOAD/views
    # a failed peer run (its log goes to stderr) gets a row; the script goes on
    if ! (run "${key}_base" "$@" --threads "$PEER_THREADS" --reps 0 &&
        run "${key}_meas" "$@" --threads "$PEER_THREADS" --reps "$reps"); then
        printf "%-13s %-18s %s\n" "$be" "$wl" "failed: $PROG under valgrind (its log is on stderr)"
        return 0
    fi
    tasks=$(log_tasks "$OUT/${key}_meas.log")
    if [ -z "$tasks" ]; then
        printf "%-13s %-18s %s\n" "$be" "$wl" "failed: no result row in $PROG's output"
        return 0
    fi
    # shellcheck disable=SC2046 # four numbers, split on purpose
    set -- $(peer_sums "${key}_base" "$pat") $(peer_sums "${key}_meas" "$pat")
    awk -v be="$be" -v wl="$wl" -v n="$tasks" -v r="$reps" -v b1="$1" -v b2="$2" -v m1="$3" -v m2="$4" \
        -v mark="$mark" 'BEGIN {
        t = n * r
        nw = m2 == "-" ? "-" : sprintf("%.0f", (m2 - b2) / t)
        printf "%-13s %-18s %7d %5d %9.0f%s%9s %9s %9s\n", be, wl, n, r, (m1 - b1) / t, mark, nw, "-", "-" }'
}

echo "# valgrind $(valgrind --version | sed 's/valgrind-//'), $BIN"
if [ -n "$PEERS" ]; then
    echo "# peers: $PEERS, --threads $PEER_THREADS; OpenMP: OMP_WAIT_POLICY=passive, libgomp GOMP_SPINCOUNT=0, libomp KMP_BLOCKTIME=0, ${PIN:-not pinned (no taskset): libomp polls}"
    echo "# *: all includes polls that cannot be switched off (libomp: taskwait; StarPU: idle workers)"
fi
[ -n "$LAYOUT" ] && echo "# layout: $LAYOUT (every program runs with --layout $LAYOUT)"
[ -n "$PEERS" ] && printf "%-13s " backend
printf "%-18s %7s %5s %9s %9s %9s %9s\n" workload tasks reps all no-wait orch lanes
for wl in $WORKLOADS; do
    reps=$REPS
    case $wl in
        independent) args="--only independent --n $N" ;;
        chain) args="--only chain --n $N" ;;
        fanout*) args="--only fanout_fanin --rounds $(( (N + 65) / 66 ))" ;;
        cholesky[0-9]*)
            t=${wl#cholesky}
            args="--only $wl --tiles $t"
            ntasks=$((t + t * (t - 1) + t * (t - 1) * (t - 2) / 6))
            reps=$(( (N + ntasks - 1) / ntasks ))
            ;;
        *) echo "callgrind.sh: unknown workload $wl" >&2; exit 1 ;;
    esac
    # the row's name, as the programs name it: WORKLOAD/views with views
    label=$wl
    [ "$LAYOUT" = views ] && label=$wl/views
    args="$args $LAYOUT_ARGS"
    PROG=$BIN
    WRAP=
    # shellcheck disable=SC2086
    run "${wl}_base" $args ${L2_ARGS:-} --reps 0
    # shellcheck disable=SC2086
    run "${wl}_meas" $args ${L2_ARGS:-} --reps "$reps"
    tasks=$(awk 'NF >= 10 && $2 ~ /^[0-9]+$/ { print $2; exit }' "$OUT/${wl}_meas.log")
    echo $((tasks * reps)) >"$OUT/${wl}_tasks"
    [ -n "$PEERS" ] && printf "%-13s " strata
    # shellcheck disable=SC2046 # eight numbers, split on purpose
    set -- $(sums "${wl}_base") $(sums "${wl}_meas")
    awk -v wl="$label" -v n="$tasks" -v r="$reps" -v b1="$1" -v b2="$2" -v b3="$3" -v b4="$4" \
        -v m1="$5" -v m2="$6" -v m3="$7" -v m4="$8" 'BEGIN {
        t = n * r
        printf "%-18s %7d %5d %9.0f %9.0f %9.0f %9.0f\n", wl, n, r, (m1 - b1) / t, (m2 - b2) / t, (m3 - b3) / t, (m4 - b4) / t }'
    if [ -n "$PEERS" ]; then
        for be in libgomp libomp starpu-lws starpu-eager; do
            # shellcheck disable=SC2086
            peer "$be" "$label" "$reps" $args
        done
    fi
done

# Where the instructions go: self Ir per function, measured run minus base run
# (so setup and warm-up cancel), all threads, per timed task.
# (callgrind_annotate reads only the first of several files: one call per thread)
profile() {
    for f in "$OUT/$1.out"-*; do callgrind_annotate --threshold=100 "$f" 2>/dev/null; done |
        grep -E '^ *[0-9,]+ +\( *[0-9.]+%\) ' | grep -v 'PROGRAM TOTALS' |
        sed -e 's/ \[[^]]*\]$//' -e 's/[^ ]*:\([A-Za-z_0-9.]*\)$/\1/' |
        awk '{ ir = $1; gsub(",", "", ir); print ir, $NF }'
}
for wl in $WORKLOADS; do
    t=$(cat "$OUT/${wl}_tasks")
    echo
    label=$wl
    [ "$LAYOUT" = views ] && label=$wl/views
    echo "# Ir per task by function (self), ${label}: measured minus base run, all threads"
    profile "${wl}_base" >"$OUT/${wl}_base.prof"
    profile "${wl}_meas" >"$OUT/${wl}_meas.prof"
    awk -v t="$t" 'NR == FNR { base[$2] += $1; next } { meas[$2] += $1 }
        END { for (f in meas) { d = (meas[f] - base[f]) / t; if (d >= 5) printf "%8.0f  %s\n", d, f } }' \
        "$OUT/${wl}_base.prof" "$OUT/${wl}_meas.prof" | sort -rn | head -n 16
done
