#!/usr/bin/env bash
# Builds the OpenMP peers twice each, of bench/l2_overhead (bench/peers/omp_dag.c)
# and of bench/taskbench (bench/peers/taskbench_omp.c, the METG sweep):
#   OUT/omp_dag_gomp, OUT/taskbench_gomp  gcc   -fopenmp         (GNU libgomp)
#   OUT/omp_dag_llvm, OUT/taskbench_llvm  clang -fopenmp=libomp  (LLVM libomp, with an rpath to it)
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

tb_src=("$bench/taskbench_graph.c" "$bench/common.c" "$here/taskbench_omp.c")

set -x
gcc -O3 -fopenmp "${warn[@]}" -o "$out/omp_dag_gomp" "${src[@]}" -lm
clang -O3 -fopenmp=libomp "${warn[@]}" -o "$out/omp_dag_llvm" "${src[@]}" -lm \
    -L"$omp_dir" -Wl,-rpath,"$omp_dir"
gcc -O2 -fopenmp "${warn[@]}" -o "$out/omp_sections_gomp" "$here/omp_sections.c"
clang -O2 -fopenmp=libomp "${warn[@]}" -o "$out/omp_sections_llvm" "$here/omp_sections.c" \
    -L"$omp_dir" -Wl,-rpath,"$omp_dir"
gcc -O3 -fopenmp -pthread "${warn[@]}" -o "$out/taskbench_gomp" "${tb_src[@]}" -lm
clang -O3 -fopenmp=libomp -pthread "${warn[@]}" -o "$out/taskbench_llvm" "${tb_src[@]}" -lm \
    -L"$omp_dir" -Wl,-rpath,"$omp_dir"
{ set +x; } 2>/dev/null

# ---- check which runtime each binary loads ----
for prog in omp_dag taskbench; do
    ldd "$out/${prog}_gomp" | grep 'libgomp' >/dev/null || { echo "build.sh: ${prog}_gomp does not load libgomp" >&2; exit 1; }
    ldd "$out/${prog}_llvm" | grep "$omp_dir/libomp" >/dev/null || {
        echo "build.sh: ${prog}_llvm does not load $omp_dir/libomp*" >&2
        ldd "$out/${prog}_llvm" >&2
        exit 1
    }
done
echo "build.sh: built $out/omp_dag_gomp, $out/taskbench_gomp (libgomp) and $out/omp_dag_llvm," \
    "$out/taskbench_llvm (libomp from $omp_dir), $out/omp_sections_gomp and $out/omp_sections_llvm"
