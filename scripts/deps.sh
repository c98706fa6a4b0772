#!/usr/bin/env bash
# Install what building and testing Strata needs, from Debian packages only, and
# only what is missing. Usage: scripts/deps.sh [test|bench]
set -euo pipefail
want=(cmake ninja-build gcc make pkg-config)
case "${1:-}" in
  test)  want+=(valgrind clang libclang-rt-dev) ;;   # clang: the fuzz targets (libFuzzer)
  bench) want+=(valgrind clang libomp-dev libstarpu-dev python3) ;;
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
