#!/usr/bin/env bash
# Build Strata three ways and run every test in each: plain (with the examples
# and the install check), ASan+UBSan, then TSan. Stops at the first red build.
# Usage: scripts/test.sh [plain|address|thread]...   (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
jobs=$(nproc)
configs=("$@")
((${#configs[@]})) || configs=(plain address thread)
for c in "${configs[@]}"; do
  case "$c" in
    plain)   dir=build;        san="" ;;
    address) dir=build-asan;   san=address ;;
    thread)  dir=build-tsan;   san=thread ;;
    *) echo "test.sh: unknown configuration '$c' (plain, address, thread)" >&2; exit 2 ;;
  esac
  echo "==== $c build ($dir) ===="
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTRATA_SANITIZE="$san" >/dev/null
  cmake --build "$dir" -j "$jobs"
  if [ "$c" = plain ]; then
    scripts/check-install.sh "$dir"
  fi
  # halt_on_error: a sanitizer report fails the test that produced it.
  # die_after_fork=0: node workers fork from processes that may run threads
  # (the application's, or a run on another thread) and their children start
  # threads; TSan supports that with this option (docs/testing.md).
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:die_after_fork=0:suppressions=$PWD/cmake/tsan.supp" \
    ctest --test-dir "$dir" --output-on-failure -j "$jobs"
done
