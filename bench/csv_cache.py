"""A 1,000,000-row CSV end to end (issue 20): the table cache's first (parse into the cache) and second (cached) run.

Generates a table in a temporary folder (numpy, seed 0): 18 numeric columns, 2 text columns of 10 and 7 levels
and a 10-class target ``y`` (about 160 MB), then:

* ``layerlab train mlp --dataset csv --data-path F --target y --adapt --epochs 1`` twice in a fresh workspace:
  whole-process wall time, peak RSS of that process (``wait4``'s ``ru_maxrss``; RUSAGE_CHILDREN of this bench
  is printed too), the parse seconds the cache entry recorded, the epoch's samples/s;
* for comparison, the previous loader (whole text in memory, pandas in one go, float64 features: the version of
  ``builder/data/tabular.py`` before the table cache, read from git) loading a 400,000-row file of the same
  columns in a fresh process: seconds and peak RSS.

``--repeats`` rounds (each a fresh workspace: first run, second run, then the previous loader): every time, rate
and size is printed as its median with its spread (p10-p90; min-max below 5 rounds; bench/results.py), after the
conditions line. Never asserts a time. Prints a Markdown block for bench/RESULTS.md.

    python bench/csv_cache.py [--rows 1000000] [--old-rows 400000] [--old-rev a745ebf] [--repeats 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results import conditions, spread  # noqa: E402


def make_table(path: Path, n: int, seed: int = 0) -> float:
    """``n`` rows of 18 numbers, 2 text columns and a 10-class target ``y`` into ``path``; returns seconds."""
    import numpy as np

    t = time.perf_counter()
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    cols = {f"x{k}": rng.normal(0, 1, n) + (y * (k % 3 == 0)) * 0.3 for k in range(18)}
    levels = np.array([f"lvl{i}" for i in range(10)])
    t1 = levels[(y + rng.integers(0, 3, n)) % 10]
    t2 = levels[rng.integers(0, 7, n)]
    with open(path, "w") as f:
        f.write(",".join([*cols, "t1", "t2", "y"]) + "\n")
        for lo in range(0, n, 100_000):
            hi = min(n, lo + 100_000)
            block = np.column_stack([np.char.mod("%.5f", c[lo:hi]) for c in cols.values()]
                                    + [t1[lo:hi], t2[lo:hi], y[lo:hi].astype(str)])
            f.write("\n".join(",".join(r) for r in block) + "\n")
    return time.perf_counter() - t


def make_in_child(path: Path, n: int) -> float:
    """:func:`make_table` in a child process; returns seconds. The bench's own memory then stays small: Linux
    carries a process's peak RSS into the ``ru_maxrss`` of the children it starts (the forked copy's, kept
    across exec), so a bench that generated the table itself reported its own ~800 MiB as every child's peak."""
    t = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--make", str(path), "--rows", str(n)], cwd=ROOT, check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    return time.perf_counter() - t


def _run(cmd: list[str], **kw) -> tuple[str, float, float]:
    """Run a whole process: its stdout, wall seconds and peak RSS in MiB (wait4)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err, env={**os.environ, "PYTHONPATH": str(ROOT)}, **kw)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if p.returncode:
            raise SystemExit(f"{' '.join(cmd[:6])} failed:\n{err.read().decode()[-3000:]}")
        return out.read().decode(), wall, ru.ru_maxrss / 1024


def cli_run(path: Path, ws: Path, epochs: int) -> dict:
    """One ``layerlab train`` process: wall seconds, peak RSS (MiB), samples/s of the last epoch."""
    cmd = [sys.executable, "-m", "builder", "train", "mlp", "--dataset", "csv", "--data-path", str(path),
           "--target", "y", "--adapt", "--epochs", str(epochs), "--early-stopping", "0", "--workspace", str(ws),
           "--quiet", "--json"]
    out, wall, rss = _run(cmd)
    res = json.loads(out[out.index("{"):])
    return {"wall_s": wall, "rss_mib": rss, "final": res.get("final", {}), "test": res.get("test") or {}}


OLD_LOAD = """
import importlib.util, sys, time, resource
sys.path.insert(0, {root!r})
import builder.data.limits as limits
limits.MAX_CSV_BYTES = 2**30; limits.MAX_CSV_ROWS = 10**7; limits.MAX_CSV_CELLS = 10**9
limits.MAX_FEATURE_CELLS = 10**9
spec = importlib.util.spec_from_file_location("old_tabular", {src!r})
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
t = time.perf_counter()
ds = mod.load_csv({path!r}, "y")
print(time.perf_counter() - t, len(ds.train))
"""


def old_load(path: Path, rev: str, tmp: Path) -> tuple[float, float, float]:
    """The loader before the table cache (``rev``'s tabular.py) in a fresh process: load s, wall s, peak RSS MiB."""
    src = tmp / "old_tabular.py"
    src.write_text(subprocess.run(["git", "show", f"{rev}:builder/data/tabular.py"], cwd=ROOT, check=True,
                                  capture_output=True, text=True).stdout)
    out, wall, rss = _run([sys.executable, "-c", OLD_LOAD.format(root=str(ROOT), src=str(src), path=str(path))])
    return float(out.split()[0]), wall, rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--old-rows", type=int, default=400_000)
    ap.add_argument("--old-rev", default="a745ebf", help="a commit whose tabular.py predates the table cache")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="rounds, each in a fresh workspace")
    ap.add_argument("--keep", help="generate into (or reuse) this folder instead of a temporary one")
    ap.add_argument("--make", help=argparse.SUPPRESS)  # the child of make_in_child: write the table and stop
    a = ap.parse_args()
    if a.make:
        make_table(Path(a.make), a.rows)
        return
    import resource

    conditions(f"CSV cache: bench/csv_cache.py --rows {a.rows} --old-rows {a.old_rows} --old-rev {a.old_rev} "
               f"--epochs {a.epochs} --repeats {a.repeats}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(a.keep) if a.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        big, small = folder / f"table{a.rows}.csv", folder / f"table{a.old_rows}.csv"
        gen = make_in_child(big, a.rows) if not big.is_file() else 0.0
        if not small.is_file():
            make_in_child(small, a.old_rows)
        firsts, seconds, parse_s, cache_mib, olds = [], [], [], [], []
        for r in range(a.repeats):
            ws = Path(tmp) / f"ws{r}"
            firsts.append(cli_run(big, ws, a.epochs))
            seconds.append(cli_run(big, ws, a.epochs))
            metas = [json.loads(m.read_text()) for m in (ws / "cache" / "tables").glob("*/meta.json")]
            parse_s.append(metas[0]["parse_s"] if metas else float("nan"))
            cache_mib.append(sum(f.stat().st_size for f in (ws / "cache").rglob("*") if f.is_file()) / 2**20)
            olds.append(old_load(small, a.old_rev, Path(tmp)))
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        big_mib = big.stat().st_size / 2**20  # before the temporary folder goes
    host = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    print(f"\n### CSV of {a.rows:,} rows x 21 columns, 10 classes (bench/csv_cache.py; {host})\n")
    print(f"File: {big_mib:.0f} MiB (generated in {gen:.0f} s). "
          f"Cache entry: {max(cache_mib):.0f} MiB float32 + targets. Parse into the cache (two passes): "
          f"{spread(parse_s, unit=' s', digits=1)}. {a.repeats} rounds: median (spread).\n")
    print("| run | whole process s | peak RSS MiB | samples/s (epoch) | test accuracy |")
    print("|---|---|---|---|---|")
    for name, rs in (("first (parse into cache)", firsts), ("second (cached)", seconds)):
        accs = sorted({round(r["test"].get("accuracy", float("nan")), 3) for r in rs})
        print(f"| `layerlab train mlp --adapt --epochs {a.epochs}`, {name} | "
              f"{spread([r['wall_s'] for r in rs], digits=1)} | {spread([r['rss_mib'] for r in rs], digits=0)} | "
              f"{spread([r['final'].get('samples_per_s', float('nan')) for r in rs], digits=0)} | "
              f"{', '.join(f'{x:.3f}' for x in accs)} |")
    print(f"| the previous loader (`{a.old_rev}`, whole text + pandas + float64) on {a.old_rows:,} rows, "
          f"load only | {spread([o[1] for o in olds], digits=1)} (load {spread([o[0] for o in olds], digits=1)}) | "
          f"{spread([o[2] for o in olds], digits=0)} | | |")
    print(f"\nPeak RSS per process from wait4; the largest of all child processes (RUSAGE_CHILDREN): {children:.0f} MiB.")

if __name__ == "__main__":
    main()
