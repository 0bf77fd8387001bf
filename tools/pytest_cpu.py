"""A pytest plugin that records what each test costs in CPU time: ``pytest -p tools.pytest_cpu --cpu-report DIR``.

Per test (setup, call and teardown together), the wall time, the worker's own CPU (user + sys) and that of the
child processes it reaped (servers, jobs, browsers, once they are waited for: a module's server is counted at its
module's last test). One tab-separated file per xdist worker in DIR; ``python tools/pytest_cpu.py DIR`` sums them
by file, costliest first.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path


def pytest_addoption(parser) -> None:
    parser.addoption("--cpu-report", default=None, help="folder for the per-test CPU report (tools/pytest_cpu.py)")


def _cpu() -> tuple[float, float]:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


class _Recorder:
    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        self.out = (folder / f"{worker}.tsv").open("a", buffering=1)
        self.last_wall, (self.last_me, self.last_kids) = time.monotonic(), _cpu()

    def pytest_runtest_logfinish(self, nodeid: str, location) -> None:
        wall, (me, kids) = time.monotonic(), _cpu()
        self.out.write(f"{nodeid}\t{wall - self.last_wall:.2f}\t{me - self.last_me:.2f}\t{kids - self.last_kids:.2f}\n")
        self.last_wall, self.last_me, self.last_kids = wall, me, kids


def pytest_configure(config) -> None:
    folder = config.getoption("--cpu-report")
    distributing = getattr(config.option, "numprocesses", None) and not os.environ.get("PYTEST_XDIST_WORKER")
    if folder and not distributing:  # with xdist, the workers record (the controller only relays their reports)
        config.pluginmanager.register(_Recorder(Path(folder)), "cpu-recorder")


def summary(folder: Path, top: int = 40) -> str:
    """Per file: wall, own CPU, children's CPU and their sum (seconds), costliest first."""
    by_file: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    files = sorted(folder.glob("gw*.tsv")) or sorted(folder.glob("*.tsv"))  # an older run's controller file: left out
    for f in files:
        for line in f.read_text().splitlines():
            node, wall, me, kids = line.split("\t")
            acc = by_file[node.split("::")[0]]
            acc[0], acc[1], acc[2] = acc[0] + float(wall), acc[1] + float(me), acc[2] + float(kids)
    rows = sorted(by_file.items(), key=lambda kv: -(kv[1][1] + kv[1][2]))
    total = [sum(v[i] for v in by_file.values()) for i in range(3)]
    lines = [f"{'file':70} {'wall':>7} {'self':>7} {'kids':>7} {'cpu':>7}",
             f"{'TOTAL':70} {total[0]:7.0f} {total[1]:7.0f} {total[2]:7.0f} {total[1] + total[2]:7.0f}"]
    lines += [f"{k:70} {v[0]:7.1f} {v[1]:7.1f} {v[2]:7.1f} {v[1] + v[2]:7.1f}" for k, v in rows[:top]]
    return "\n".join(lines)


if __name__ == "__main__":
    print(summary(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 40))
