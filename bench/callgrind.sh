#!/bin/sh
# Instructions per task of the L2 engine, counted by callgrind.
#
#   bench/callgrind.sh [BUILD_DIR] [WORKLOAD...]
#
# BUILD_DIR defaults to build (e.g. /tmp/build-bench); WORKLOADs default to
# "chain cholesky16" and may be independent, chain, fanout or choleskyT.
#
# For each workload it runs l2_overhead twice under valgrind --tool=callgrind:
# once with only the warm-up run (--reps 0) and once with the warm-up plus REPS
# timed runs. The difference of the instruction counts (Ir) divided by the tasks
# of the timed runs is the steady-state cost per task: process start, worker
# init, buffer setup and the warm-up cancel out.
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
# Environment: N (20000: tasks of independent and chain, ~tasks of fanout),
# REPS (4 for those; Cholesky runs enough reps to time ~20000 tasks),
# CALLGRIND_KEEP=dir keeps the callgrind.out files and logs there.
set -eu

BUILD=${1:-build}
[ $# -gt 0 ] && shift
WORKLOADS=${*:-chain cholesky16}
BIN=$BUILD/bench/l2_overhead
N=${N:-20000}
REPS=${REPS:-4}

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

# run NAME ARGS...: callgrind l2_overhead ARGS, one output file per thread
# ($OUT/NAME.out-01 is the main thread, the orchestrator)
run() {
    name=$1
    shift
    rm -f "$OUT/$name.out" "$OUT/$name.out"-*
    valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$OUT/$name.out" \
        "$BIN" --min-tasks 0 --warmup 1 "$@" >"$OUT/$name.log" 2>&1 ||
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

echo "# valgrind $(valgrind --version | sed 's/valgrind-//'), $BIN"
printf "%-14s %7s %5s %9s %9s %9s %9s\n" workload tasks reps all no-wait orch lanes
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
    # shellcheck disable=SC2086
    run "${wl}_base" $args --reps 0
    # shellcheck disable=SC2086
    run "${wl}_meas" $args --reps "$reps"
    tasks=$(awk 'NF >= 10 && $2 ~ /^[0-9]+$/ { print $2; exit }' "$OUT/${wl}_meas.log")
    echo $((tasks * reps)) >"$OUT/${wl}_tasks"
    # shellcheck disable=SC2046 # eight numbers, split on purpose
    set -- $(sums "${wl}_base") $(sums "${wl}_meas")
    awk -v wl="$wl" -v n="$tasks" -v r="$reps" -v b1="$1" -v b2="$2" -v b3="$3" -v b4="$4" \
        -v m1="$5" -v m2="$6" -v m3="$7" -v m4="$8" 'BEGIN {
        t = n * r
        printf "%-14s %7d %5d %9.0f %9.0f %9.0f %9.0f\n", wl, n, r, (m1 - b1) / t, (m2 - b2) / t, (m3 - b3) / t, (m4 - b4) / t }'
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
    echo "# Ir per task by function (self), ${wl}: measured minus base run, all threads"
    profile "${wl}_base" >"$OUT/${wl}_base.prof"
    profile "${wl}_meas" >"$OUT/${wl}_meas.prof"
    awk -v t="$t" 'NR == FNR { base[$2] += $1; next } { meas[$2] += $1 }
        END { for (f in meas) { d = (meas[f] - base[f]) / t; if (d >= 5) printf "%8.0f  %s\n", d, f } }' \
        "$OUT/${wl}_base.prof" "$OUT/${wl}_meas.prof" | sort -rn | head -n 16
done
