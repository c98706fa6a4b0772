#!/usr/bin/env bash
# Install the build in $1 into a scratch prefix and build the example against the
# installed tree twice: through pkg-config and through find_package(strata).
set -euo pipefail
build=${1:-build}
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(find "$prefix" -name strata.pc -printf '%h\n' | head -1)
PKG_CONFIG_PATH=$libdir cc -std=c11 -Wall -Wextra -Werror examples/l2_vector_add/main.c \
  $(PKG_CONFIG_PATH=$libdir pkg-config --cflags --libs strata) -Wl,-rpath,"$prefix/lib" -o "$prefix/via_pkgconfig"
"$prefix/via_pkgconfig" >/dev/null
mkdir -p "$prefix/consumer"
cat > "$prefix/consumer/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.16)
project(consumer C)
find_package(strata REQUIRED)
add_executable(via_cmake $PWD/examples/l2_vector_add/main.c)
target_link_libraries(via_cmake PRIVATE strata::strata)
CM
cmake -S "$prefix/consumer" -B "$prefix/consumer/build" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$prefix/consumer/build" >/dev/null
"$prefix/consumer/build/via_cmake" >/dev/null
# libstrata_mpi, where the build had Open MPI: an MPI program through pkg-config
# and through the CMake package.
if [ -f "$libdir/strata-mpi.pc" ]; then
  cc -std=c11 -Wall -Wextra -Werror examples/l4_cluster/main.c \
    $(PKG_CONFIG_PATH=$libdir pkg-config --cflags --libs strata-mpi) -lm -Wl,-rpath,"$prefix/lib" \
    -o "$prefix/mpi_via_pkgconfig"
  cat >> "$prefix/consumer/CMakeLists.txt" <<CM
add_executable(mpi_via_cmake $PWD/examples/l4_cluster/main.c)
target_link_libraries(mpi_via_cmake PRIVATE strata::strata_mpi m)
CM
  cmake -S "$prefix/consumer" -B "$prefix/consumer/build" >/dev/null
  cmake --build "$prefix/consumer/build" >/dev/null
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_backing_directory="$prefix" \
    OMPI_MCA_orte_tmpdir_base="$prefix" timeout 120 \
    mpiexec -n 3 --oversubscribe --mca btl self,vader "$prefix/mpi_via_pkgconfig" >/dev/null
fi
echo "check-install: the installed headers, libraries, pkg-config files and CMake package work"
