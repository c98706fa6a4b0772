#!/usr/bin/env python3
"""The call graph between the files of src/node/: for each pair of files, the
functions node.h declares that one calls in the other (comments stripped by
gcc's preprocessor first), then the file-level cycles (strongly connected
components) and the mutual pairs. The node engine's shape is meant to have
none (docs/node-engine-plan.md).

Usage: /usr/bin/python3 scripts/node-callgraph.py [src/node]"""
import collections
import os
import re
import subprocess
import sys


def stripped(path):
    return subprocess.run(["gcc", "-fpreprocessed", "-dD", "-E", "-P", path], capture_output=True,
                          text=True, check=True).stdout


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "src", "node")
    files = sorted(f for f in os.listdir(folder) if f.endswith(".c"))
    source = {f: stripped(os.path.join(folder, f)) for f in files}
    headers = "".join(stripped(os.path.join(folder, h)) for h in os.listdir(folder) if h.endswith(".h"))
    declared = set(re.findall(r"\b(strata__[a-z0-9_]+)\s*\(", headers))
    defined_in = {}
    definition = re.compile(r"^(?!static)[A-Za-z_][^\n;{]*?\b(strata_?_?[a-z0-9_]+)\s*\([^;]*?\)\s*"
                            r"(?:__attribute__\S*\s*)?\{", re.M | re.S)
    for f, text in source.items():
        for m in definition.finditer(text):
            if m.group(1) in declared:
                defined_in[m.group(1)] = f
    edges = collections.defaultdict(set)
    for caller, text in source.items():
        for fn, callee in defined_in.items():
            if callee != caller and re.search(r"\b" + fn + r"\s*\(", text):
                edges[(caller, callee)].add(fn)
    for (a, b), fns in sorted(edges.items()):
        print(f"{a} -> {b}: {' '.join(sorted(fns))}")
    graph = collections.defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    # Tarjan's strongly connected components
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            components.append(component)

    for v in files:
        if v not in index:
            visit(v)
    cycles = [sorted(c) for c in components if len(c) > 1]
    print("cycles:", cycles)
    print("mutual:", [f"{a}<->{b}" for (a, b) in sorted(edges) if a < b and (b, a) in edges])
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
