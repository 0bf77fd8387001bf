"""What a Build › ONNX export of the cnn template costs where nothing is warm, in two checkouts side by side.

Two scenarios, each a fresh Python process per repeat, the checkouts interleaved repeat by repeat (so the shared
machine's load falls on both alike), CPU seconds (user + sys of the process and every child it reaped, the
zygote's forks included) as well as wall seconds:

- ``cold``: one ``export_onnx`` in a fresh process (``layerlab export``, a fresh sandboxed worker, the first
  export of a test process, the zygote's own warm-up export): the export call's CPU seconds;
- ``idle``: a server's exports after its zygote ended idle: the zygote is warmed (the app's warm-up) with an idle
  time of 1 s, left to end, and then two exports of the cnn template through the sandboxed worker
  (``export_onnx_bytes``, as the Build page calls it): each one's wall seconds, and the CPU of the whole process
  from its first export to its end (zygote and children reaped).

Run::

    .venv/bin/python bench/bench_export_wait.py --roots /path/before /path/after [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

COLD = r"""
import json, os, time
from builder.graph.templates import load_template
from builder.interchange.onnx_export import export_onnx
p = load_template("cnn")
t, w = os.times(), time.perf_counter()
export_onnx(p, None)
u = os.times()
print(json.dumps({"cpu": u.user + u.system - t.user - t.system, "wall": time.perf_counter() - w}))
"""

IDLE = r"""
import json, os, resource, time
from builder.graph.templates import load_template
from builder.interchange.worker import export_onnx_bytes, warm_sandbox
from builder.process import zygote
pj = load_template("cnn").to_json()
assert warm_sandbox()
first = zygote._ZYGOTE.proc
while first.poll() is None:
    time.sleep(0.1)
def cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime
start, walls = cpu(), []
for _ in range(2):
    w = time.perf_counter()
    export_onnx_bytes(pj)
    walls.append(time.perf_counter() - w)
zygote.shutdown()
print(json.dumps({"cpu": cpu() - start, "wall1": walls[0], "wall2": walls[1]}))
"""


def _run(root: str, code: str) -> dict:
    env = {**os.environ, "PYTHONPATH": root, "LAYERLAB_SANDBOX_ZYGOTE_IDLE_S": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True,
                         timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--roots", nargs=2, required=True, metavar=("BEFORE", "AFTER"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only", choices=("cold", "idle"))
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} before; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
          flush=True)
    got: dict = {(s, r): [] for s in ("cold", "idle") for r in args.roots}
    for i in range(args.repeats):
        for scenario, code in (("cold", COLD), ("idle", IDLE)):
            if args.only and scenario != args.only:
                continue
            for root in (args.roots if i % 2 == 0 else args.roots[::-1]):  # alternate which goes first
                got[scenario, root].append(r := _run(root, code))
                print(scenario, root, {k: round(v, 2) for k, v in r.items()}, flush=True)
    for scenario in ("cold", "idle"):
        if args.only and scenario != args.only:
            continue
        for key in got[scenario, args.roots[0]][0]:
            cols = [statistics.median(r[key] for r in got[scenario, root]) for root in args.roots]
            ratio = statistics.median(a[key] and b[key] / a[key] for a, b in zip(*(got[scenario, r] for r in args.roots)))
            print(f"{scenario:5s} {key:6s} before {cols[0]:6.2f}  after {cols[1]:6.2f}  after/before (median of "
                  f"pairs) {ratio:.2f}  n={len(got[scenario, args.roots[0]])}")
    print(f"load average {os.getloadavg()[0]:.1f} after", flush=True)


if __name__ == "__main__":
    main()
