#!/usr/bin/env python3
"""The include graph is the layer diagram (docs/layout.md): every source file
and public header may include only headers of its own layer or of lower ones,
the maths includes neither MPI nor HDF5 nor the config, the session layer
(the C library's core) calls no MPI function, the headers
include one another without a circle, and docs/layout.md names every file of
src/. Run: test_layers.py SOURCE_DIR."""
import os
import re
import sys

# Lowest first; a folder of src/ per layer.
LAYERS = ["base", "maths", "measures", "plot", "plan", "config", "io", "reduce", "result", "job", "tools", "session", "driver"]
# Public headers with no .c file of their name: the folder that owns them.
HEADER_ONLY = {"text": "base", "blas": "maths", "estimator": "maths"}
# What each layer must never include, whatever its rank.
FORBIDDEN = {"maths": {"<mpi.h>", "<hdf5.h>", "mpicka/config.h"},
             "measures": {"<mpi.h>", "<hdf5.h>", "mpicka/config.h"}, "plot": {"<mpi.h>", "<hdf5.h>"}}

INCLUDE = re.compile(r'^\s*#\s*include\s+([<"][^>"]+[>"])', re.M)
# Layers whose code must call no MPI function: a library session runs in a
# plain process (mpicka/session.h); the driver gathers for it.
NO_MPI_CALLS = {"session"}
MPI_CALL = re.compile(r"\bMPI_[A-Z][a-z_]*\s*\(")


def includes(path):
    with open(path, encoding="utf-8") as f:
        return [m.strip('<>"') if m.startswith('"') else m for m in INCLUDE.findall(f.read())]


def owners(root):
    """Module name -> layer, from where each src/LAYER/NAME.c lives."""
    own = dict(HEADER_ONLY)
    for layer in LAYERS:
        folder = os.path.join(root, "src", layer)
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            if name.endswith(".c"):
                own.setdefault(name[:-2], layer)
    return own


def main(root):
    own = owners(root)
    problems = []
    unknown = [d for d in os.listdir(os.path.join(root, "src"))
               if os.path.isdir(os.path.join(root, "src", d)) and d not in LAYERS]
    if unknown:
        problems.append(f"src/{unknown[0]}: a folder that is no layer (add it to LAYERS and docs/layout.md)")
    headers = sorted(f[:-2] for f in os.listdir(os.path.join(root, "include", "mpicka")) if f.endswith(".h"))
    files = [(os.path.join("include", "mpicka", h + ".h"), own.get(h)) for h in headers]
    for layer in LAYERS:
        folder = os.path.join(root, "src", layer)
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            if name.endswith((".c", ".h")):
                files.append((os.path.join("src", layer, name), layer))
    graph = {}
    for rel, layer in files:
        if layer is None:
            problems.append(f"{rel}: no layer owns this header (a src/LAYER/{os.path.basename(rel)[:-2]}.c, "
                            "or an entry in HEADER_ONLY)")
            continue
        if layer in NO_MPI_CALLS and rel.startswith("src/"):
            with open(os.path.join(root, rel), encoding="utf-8") as f:
                call = MPI_CALL.search(f.read())
            if call:
                problems.append(f"{rel} ({layer}) calls {call.group(0).rstrip('( ')}: this layer calls no MPI")
        for inc in includes(os.path.join(root, rel)):
            if inc in FORBIDDEN.get(layer, ()):
                problems.append(f"{rel} ({layer}) includes {inc}")
            if not inc.startswith("mpicka/"):
                continue
            dep = inc[len("mpicka/"):-2]
            if dep not in own:
                problems.append(f"{rel} includes {inc}, which no layer owns")
            elif LAYERS.index(own[dep]) > LAYERS.index(layer):
                problems.append(f"{rel} ({layer}) includes {inc} of the higher layer {own[dep]}")
            if rel.startswith("include/"):
                graph.setdefault(os.path.basename(rel)[:-2], set()).add(dep)
    problems += circles(graph)
    problems += unlisted(root, files)
    for p in problems:
        print("layers:", p)
    print(f"{len(files)} files checked against {len(LAYERS)} layers: {len(problems)} problem(s)")
    return 1 if problems else 0


def unlisted(root, files):
    """Files the floor plan (docs/layout.md) does not name."""
    with open(os.path.join(root, "docs", "layout.md"), encoding="utf-8") as f:
        plan = f.read()
    return [f"{rel}: not named in docs/layout.md" for rel, _ in files
            if f"`{os.path.basename(rel)}`" not in plan and not rel.startswith("include/")]


def circles(graph):
    """Headers that reach themselves through their includes."""
    found, state = [], {}

    def visit(h, path):
        state[h] = 1
        for d in sorted(graph.get(h, ())):
            if state.get(d) == 1:
                found.append("include circle: " + " -> ".join(path[path.index(d):] + [d]))
            elif d not in state:
                visit(d, path + [d])
        state[h] = 2

    for h in sorted(graph):
        if h not in state:
            visit(h, [h])
    return found


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
