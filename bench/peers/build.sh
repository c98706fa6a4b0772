#!/usr/bin/env bash
# Builds the OpenMP peer of bench/l2_overhead (bench/peers/omp_dag.c) twice:
#   OUT/omp_dag_gomp  gcc   -fopenmp         (GNU libgomp)
#   OUT/omp_dag_llvm  clang -fopenmp=libomp  (LLVM libomp, with an rpath to it)
# and bench/peers/omp_sections.c the same two ways (OUT/omp_sections_gomp,
# OUT/omp_sections_llvm: which depend clauses on sections of one array order
# two tasks, what omp_dag --layout views relies on).
# OUT is $1, default /tmp/strata-peers. Installs gcc, clang and libomp-dev with
# apt-get when dpkg says one is missing (needs root, or sudo). Not part of the
# project's CMake build: CI machines may not have libomp.
#
#   bash bench/peers/build.sh [OUT]
#   OUT/omp_dag_gomp --help
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bench=$(dirname "$here")
out=${1:-/tmp/strata-peers}

# ---- packages ----
missing=()
for pkg in gcc clang libomp-dev; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    echo "build.sh: installing ${missing[*]}" >&2
    sudo=()
    if [[ $(id -u) != 0 ]]; then
        command -v sudo >/dev/null || { echo "build.sh: need root (or sudo) to install ${missing[*]}" >&2; exit 1; }
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# ---- where clang's libomp lives ----
# clang -fopenmp=libomp links -lomp; Debian puts libomp.so in /usr/lib/llvm-N/lib,
# which the dynamic loader does not search, hence -L and an rpath.
clang_bin=$(readlink -f "$(command -v clang)")
omp_dir=
for dir in "$(dirname "$clang_bin")/../lib" $(printf '%s\n' /usr/lib/llvm-*/lib | sort -rV) \
           /usr/lib/x86_64-linux-gnu /usr/local/lib; do
    if [[ -e $dir/libomp.so ]]; then
        omp_dir=$(cd "$dir" && pwd -P)
        break
    fi
done
if [[ -z $omp_dir ]]; then
    echo "build.sh: cannot find libomp.so (is libomp-dev installed for $(clang --version | head -n1)?)" >&2
    exit 1
fi

# ---- build ----
mkdir -p "$out"
src=("$bench/dag.c" "$bench/common.c" "$bench/tiles.c" "$here/omp_dag.c")
warn=(-std=c11 -Wall -Wextra -Werror)

set -x
gcc -O3 -fopenmp "${warn[@]}" -o "$out/omp_dag_gomp" "${src[@]}" -lm
clang -O3 -fopenmp=libomp "${warn[@]}" -o "$out/omp_dag_llvm" "${src[@]}" -lm \
    -L"$omp_dir" -Wl,-rpath,"$omp_dir"
gcc -O2 -fopenmp "${warn[@]}" -o "$out/omp_sections_gomp" "$here/omp_sections.c"
clang -O2 -fopenmp=libomp "${warn[@]}" -o "$out/omp_sections_llvm" "$here/omp_sections.c" \
    -L"$omp_dir" -Wl,-rpath,"$omp_dir"
{ set +x; } 2>/dev/null

# ---- check which runtime each binary loads ----
ldd "$out/omp_dag_gomp" | grep -q 'libgomp' || { echo "build.sh: omp_dag_gomp does not load libgomp" >&2; exit 1; }
ldd "$out/omp_dag_llvm" | grep -q "$omp_dir/libomp" || {
    echo "build.sh: omp_dag_llvm does not load $omp_dir/libomp*" >&2
    ldd "$out/omp_dag_llvm" >&2
    exit 1
}
echo "build.sh: built $out/omp_dag_gomp (libgomp) and $out/omp_dag_llvm (libomp from $omp_dir)," \
    "$out/omp_sections_gomp and $out/omp_sections_llvm"
