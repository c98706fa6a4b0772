#!/usr/bin/env bash
# Run every fuzz target (tests/fuzz/) for SECONDS each (default 60) with clang's
# libFuzzer under ASan and UBSan, from the seed corpus, and print a table of
# executions and coverage (docs/reliability.md records it). New inputs stay in
# build-fuzz/; a crash leaves its input there and fails the script.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(wire mailbox registration env)
scripts/deps.sh test
cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSTRATA_SANITIZE=address -DSTRATA_BUILD_FUZZ=ON -DSTRATA_BUILD_TESTS=OFF -DSTRATA_BUILD_BENCH=OFF \
  -DSTRATA_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-fuzz --target fuzzers
echo "| target | seconds | executions | coverage (edges) | features | corpus |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for t in "${targets[@]}"; do
  dir=build-fuzz/tests/fuzz
  mkdir -p "$dir/corpus/$t"
  log="$dir/$t.log"
  if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      "$dir/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
      -artifact_prefix="$dir/" "$dir/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz.sh: $t found a failure; its input is in $dir/ (see $log)" >&2
    exit 1
  fi
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
  cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.*corp: \([0-9]*\).*/\1/p' <<<"$last")
  echo "| $t | $secs | $execs | $cov | $ft | $corp |"
done
