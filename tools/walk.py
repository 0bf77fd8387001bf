"""The walk from ``run_training(project)`` to a finished run: which of our files it enters, how often it climbs back.

Runs a one-epoch training of a template on a built-in dataset into a temporary run store while a profiler
hook records every call between functions of ``builder/``. It prints:

- files entered: the distinct ``builder/`` files whose functions run during the walk;
- rooms entered: the packages (``builder.graph``, ``builder.data``, ...) and top-level modules those files
  belong to, in the order the walk first enters them;
- climbs back: calls from a module into a module of a *higher* import layer (see ``tools/archmap.py``),
  i.e. a lower stage reaching back up the pipeline (callbacks, late imports, passed-in functions);
  counted once per distinct (caller file, callee file) pair and once per distinct pair of functions.

Usage: ``python tools/walk.py [--template mlp --dataset iris]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT))

from archmap import import_graph, layers, module_name  # noqa: E402


def walk(template: str, dataset: str) -> tuple[list[str], set[tuple[str, str]], set[tuple[str, str, str, str]]]:
    """Train ``template`` on ``dataset`` for one epoch into a temporary store; return files and climbs."""
    import builder

    lay = layers(import_graph(ROOT))
    pkg = str(ROOT / "builder")
    files: list[str] = []
    climbs: set[tuple[str, str]] = set()
    sites: set[tuple[str, str, str, str]] = set()

    def mod_of(filename: str) -> str | None:
        if not filename.startswith(pkg):
            return None
        return module_name(Path(filename), ROOT)

    def prof(frame, event, arg):  # noqa: ARG001
        if event != "call" or frame.f_code.co_name == "<module>":
            return
        callee = mod_of(frame.f_code.co_filename)
        if callee is None:
            return
        if callee not in files:
            files.append(callee)
        back = frame.f_back
        while back is not None and mod_of(back.f_code.co_filename) is None:
            back = back.f_back
        caller = mod_of(back.f_code.co_filename) if back is not None else None
        if caller and caller != callee and lay.get(callee, 0) > lay.get(caller, 0):
            climbs.add((caller, callee))
            sites.add((caller, back.f_code.co_name, callee, frame.f_code.co_name))

    project = builder.load_template(template)
    with tempfile.TemporaryDirectory() as ws:
        store = builder.RunStore(ws)
        builder.run_training(project, dataset, {"epochs": 1}, store=store, adapt=True)  # warm imports first
        sys.setprofile(prof)
        try:
            builder.run_training(project, dataset, {"epochs": 1}, store=store, adapt=True)
        finally:
            sys.setprofile(None)
    return files, climbs, sites


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--template", default="mlp")
    ap.add_argument("--dataset", default="iris")
    a = ap.parse_args(argv)
    files, climbs, sites = walk(a.template, a.dataset)
    print(f"files entered: {len(files)}")
    for f in files:
        print("   ", f)
    rooms: list[str] = []
    for f in files:  # the stage a file belongs to: builder.<package>, or a top-level module of builder/
        room = ".".join(f.split(".")[:2])
        if room not in rooms:
            rooms.append(room)
    print(f"rooms entered (packages and top-level modules of builder/, in the order entered): {len(rooms)}")
    print("    " + " -> ".join(rooms))
    print(f"climbs back (distinct caller -> callee pairs into a higher import layer): {len(climbs)}")
    for c, d in sorted(climbs):
        print(f"    {c} -> {d}")
    print(f"climbing call sites (distinct caller function -> callee function): {len(sites)}")
    for c, cf, d, df in sorted(sites):
        print(f"    {c}.{cf} -> {d}.{df}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
