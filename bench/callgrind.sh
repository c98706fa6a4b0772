#!/bin/sh
# Instructions per task of the L2 engine, counted by callgrind.
#
#   bench/callgrind.sh [BUILD_DIR]        (default: build; e.g. /tmp/build-bench)
#
# For each workload it runs l2_overhead twice under valgrind --tool=callgrind:
# once with only the warm-up run (--reps 0) and once with the warm-up plus REPS
# timed runs. The difference of the total instruction counts (Ir, every thread)
# divided by the tasks of the timed runs is the steady-state cost per task:
# process start, worker init, buffer setup and the warm-up cancel out.
#
# Two figures per workload:
#   all      every instruction, spin-waits included;
#   no-wait  without strata__event_wait (inclusive: its polling, sched_yield and
#            futex calls), i.e. the work of submit, dependency tracking,
#            scheduling, kernel calls, completion and retirement.
# valgrind runs one thread at a time, so the spin part depends on its scheduler
# and says little about real hardware; no-wait is the stable figure.
#
# Environment: CHAIN_N (20000), CHAIN_REPS (4), CHOL_T (16), CHOL_REPS (25),
# CALLGRIND_KEEP=dir keeps the callgrind.out files and logs there.
set -eu

BUILD=${1:-build}
BIN=$BUILD/bench/l2_overhead
CHAIN_N=${CHAIN_N:-20000}
CHAIN_REPS=${CHAIN_REPS:-4}
CHOL_T=${CHOL_T:-16}
CHOL_REPS=${CHOL_REPS:-25}

if [ ! -x "$BIN" ]; then
    echo "callgrind.sh: $BIN not found; build first (cmake --build $BUILD)" >&2
    exit 1
fi
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind not found" >&2; exit 1; }
command -v callgrind_annotate >/dev/null || { echo "callgrind.sh: callgrind_annotate not found" >&2; exit 1; }

if [ -n "${CALLGRIND_KEEP:-}" ]; then
    OUT=$CALLGRIND_KEEP
    mkdir -p "$OUT"
else
    OUT=$(mktemp -d)
    trap 'rm -rf "$OUT"' EXIT
fi

# run NAME ARGS...: callgrind l2_overhead ARGS; leaves $OUT/NAME.out
run() {
    name=$1
    shift
    valgrind --tool=callgrind --callgrind-out-file="$OUT/$name.out" "$BIN" --min-tasks 0 "$@" \
        >"$OUT/$name.log" 2>&1 || { echo "callgrind.sh: run $name failed:" >&2; cat "$OUT/$name.log" >&2; exit 1; }
}

# total Ir of a callgrind output file
total_ir() {
    sed -n 's/^\(summary\|totals\): *\([0-9]*\).*/\2/p' "$1" | head -n 1
}

# inclusive Ir of strata__event_wait (0 when it never ran)
wait_ir() {
    callgrind_annotate --inclusive=yes --threshold=100 "$1" 2>/dev/null |
        awk '/strata__event_wait/ { gsub(",", "", $1); print $1; found = 1; exit } END { if (!found) print 0 }'
}

# report LABEL BASE MEASURED TASKS
report() {
    b=$(total_ir "$OUT/$2.out"); m=$(total_ir "$OUT/$3.out")
    bw=$(wait_ir "$OUT/$2.out"); mw=$(wait_ir "$OUT/$3.out")
    awk -v l="$1" -v b="$b" -v m="$m" -v bw="$bw" -v mw="$mw" -v t="$4" 'BEGIN {
        printf "%-12s %9d tasks  %8.0f Ir/task all  %8.0f Ir/task no-wait\n", l, t, (m - b) / t, ((m - mw) - (b - bw)) / t }'
}

echo "# valgrind $(valgrind --version | sed 's/valgrind-//'), $BIN"
run chain_base --only chain --n "$CHAIN_N" --reps 0
run chain_meas --only chain --n "$CHAIN_N" --reps "$CHAIN_REPS"
run chol_base --only "cholesky$CHOL_T" --tiles "$CHOL_T" --reps 0
run chol_meas --only "cholesky$CHOL_T" --tiles "$CHOL_T" --reps "$CHOL_REPS"

CHOL_TASKS=$(awk -v t="$CHOL_T" 'BEGIN { print t + t * (t - 1) + (t >= 3 ? t * (t - 1) * (t - 2) / 6 : 0) }')
report chain chain_base chain_meas $((CHAIN_N * CHAIN_REPS))
report "cholesky$CHOL_T" chol_base chol_meas $((CHOL_TASKS * CHOL_REPS))

# Where the instructions go: self cost per function of the measured runs (the
# warm-up and setup are included, so small entries may be startup).
for n in chain_meas chol_meas; do
    echo
    echo "# top functions, self Ir, $n"
    callgrind_annotate --threshold=95 "$OUT/$n.out" 2>/dev/null |
        grep -E '^ *[0-9,]+ +\( *[0-9.]+%\) ' | grep -v 'PROGRAM TOTALS' |
        sed -e 's/ \[[^]]*\]$//' -e 's/[^ ]*:\([A-Za-z_0-9.]*\)$/\1/' | head -n 14
done
