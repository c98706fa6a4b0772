#!/usr/bin/env bash
# Build Strata three ways and run every test in each: plain (with the examples
# and the install check), ASan+UBSan, then TSan; then build the fuzz targets
# with clang and run each briefly; then the Python package's tests with pytest
# (Debian's /usr/bin/python3, over the plain build's package). Stops at the
# first red build. Output ends with CTest's summaries, then pytest's.
# Usage: scripts/test.sh [plain|address|thread|fuzz|python]...   (default: all five)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
jobs=$(nproc)
configs=("$@")
((${#configs[@]})) || configs=(plain address thread fuzz python)
for c in "${configs[@]}"; do
  if [ "$c" = python ]; then
    echo "==== Python package (build/python, pytest) ===="
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build build -j "$jobs" --target strata_python serving_kernels
    scripts/check-python-install.sh
    # pytest exits 5 when it collects nothing: that fails this script too.
    PYTHONPATH="$PWD/build/python" STRATA_BUILD_DIR="$PWD/build" \
      timeout 1200 /usr/bin/python3 -m pytest -p no:cacheprovider -q -rs tests/python
    # Again over the ASan+UBSan build: the extension and the library
    # instrumented, the sanitizer's runtime preloaded into the interpreter (which
    # is not instrumented, hence no leak check: the interpreter keeps what it
    # allocates until exit). Any report aborts the test that made it.
    echo "==== Python package under ASan+UBSan (build-asan/python, pytest) ===="
    cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTRATA_SANITIZE=address >/dev/null
    cmake --build build-asan -j "$jobs" --target strata_python serving_kernels strata_static
    LD_PRELOAD="$(gcc -print-file-name=libasan.so)" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 STRATA_TEST_CFLAGS="-fsanitize=address,undefined" \
    PYTHONPATH="$PWD/build-asan/python" STRATA_BUILD_DIR="$PWD/build-asan" \
      timeout 1200 /usr/bin/python3 -m pytest -p no:cacheprovider -q -rs tests/python
    continue
  fi
  if [ "$c" = fuzz ]; then
    echo "==== fuzz targets (build-fuzz, clang, ASan+UBSan) ===="
    cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DSTRATA_SANITIZE=address -DSTRATA_BUILD_FUZZ=ON -DSTRATA_BUILD_TESTS=OFF -DSTRATA_BUILD_BENCH=OFF \
      -DSTRATA_BUILD_EXAMPLES=OFF -DSTRATA_FUZZ_SECONDS="${STRATA_FUZZ_SECONDS:-10}" >/dev/null
    cmake --build build-fuzz -j "$jobs" --target fuzzers
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      ctest --test-dir build-fuzz --output-on-failure -j "$jobs" -L fuzz
    continue
  fi
  case "$c" in
    plain)   dir=build;        san="" ;;
    address) dir=build-asan;   san=address ;;
    thread)  dir=build-tsan;   san=thread ;;
    *) echo "test.sh: unknown configuration '$c' (plain, address, thread, fuzz, python)" >&2; exit 2 ;;
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
