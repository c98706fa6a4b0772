#!/usr/bin/env bash
# Build the StarPU peers against the distribution's StarPU (Debian: libstarpu-dev,
# 1.3.x): of l2_overhead, bench/peers/starpu_dag.c on the DAGs of bench/dag.c; of
# taskbench (the METG sweep), bench/peers/taskbench_starpu.c.
#
#   bash bench/peers/build_starpu.sh [OUTDIR]      (default /tmp/strata-peers)
#
# Installs libstarpu-dev, pkg-config and gcc with apt-get when missing (needs
# root, as on the project's machines). Leaves OUTDIR/starpu_dag and
# OUTDIR/taskbench_starpu. Does not touch the CMake build: StarPU is not a
# dependency of Strata.
set -euo pipefail

out=${1:-/tmp/strata-peers}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bench=$(cd "$here/.." && pwd)

missing=()
for pkg in libstarpu-dev pkg-config gcc; do
    if ! dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    echo "build_starpu: installing ${missing[*]}" >&2
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi

# The pkg-config module: starpu-1.3 on Debian 12; take whatever starpu-X.Y is there.
pc=$(pkg-config --list-all | awk '{print $1}' | grep -i '^starpu-[0-9]' | sort -V | tail -n 1 || true)
if [ -z "$pc" ]; then
    pc=$(pkg-config --list-all | awk '{print $1}' | grep -i '^starpu' | sort -V | tail -n 1 || true)
fi
if [ -z "$pc" ]; then
    echo "build_starpu: no StarPU pkg-config module found (pkg-config --list-all | grep -i starpu)" >&2
    exit 1
fi
echo "build_starpu: using pkg-config module $pc ($(pkg-config --modversion "$pc"))" >&2

read -r -a cflags <<<"$(pkg-config --cflags "$pc")"
read -r -a libs <<<"$(pkg-config --libs "$pc")"

mkdir -p "$out"
cc=${CC:-gcc}
warn=(-Wall -Wextra)
# -Werror only when StarPU's headers are clean under it with this compiler.
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf '#include <starpu.h>\nint main(void) { return 0; }\n' >"$probe/p.c"
if "$cc" -std=c11 -D_POSIX_C_SOURCE=200809L -O3 "${warn[@]}" -Werror "${cflags[@]}" -c "$probe/p.c" \
        -o "$probe/p.o" 2>"$probe/err"; then
    warn+=(-Werror)
else
    echo "build_starpu: StarPU's headers warn under -Werror; building without it:" >&2
    sed 's/^/  /' "$probe/err" >&2
fi

"$cc" -std=c11 -D_POSIX_C_SOURCE=200809L -O3 "${warn[@]}" "${cflags[@]}" -I"$bench" \
    "$bench/dag.c" "$bench/common.c" "$bench/tiles.c" "$here/starpu_dag.c" -o "$out/starpu_dag" "${libs[@]}" -lm
"$cc" -std=c11 -D_POSIX_C_SOURCE=200809L -O3 -pthread "${warn[@]}" "${cflags[@]}" -I"$bench" \
    "$bench/taskbench_graph.c" "$bench/common.c" "$here/taskbench_starpu.c" -o "$out/taskbench_starpu" \
    "${libs[@]}" -lm
echo "build_starpu: built $out/starpu_dag and $out/taskbench_starpu (flags: ${warn[*]})" >&2
