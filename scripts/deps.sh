#!/usr/bin/env bash
# Install what building and testing Strata needs, from Debian packages only, and
# only what is missing. Usage: scripts/deps.sh [test|bench]
# The Python package is built and tested with Debian's interpreter,
# /usr/bin/python3 (the python3 first on PATH may be another one, without these
# packages): its headers, numpy (the one runtime dependency), pytest, and the
# setuptools and wheel that `pip install --no-build-isolation .` uses offline.
set -euo pipefail
python=(python3 python3-dev python3-numpy python3-pytest python3-setuptools python3-wheel python3-pip python3-venv)
want=(cmake ninja-build gcc make pkg-config "${python[@]}")
case "${1:-}" in
  test)  want+=(valgrind clang libclang-rt-dev openmpi-bin libopenmpi-dev) ;;   # clang: the fuzz targets (libFuzzer); Open MPI: libstrata_mpi and its tests
  bench) want+=(valgrind clang libomp-dev libstarpu-dev openmpi-bin libopenmpi-dev) ;;
esac
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps.sh: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
