"""CPU seconds of a command by kind of process: the test workers, Chromium, job launchers and their forks, servers,
CLI runs, ... (what `bench/cpu_of.py` totals, broken down).

Usage: python bench/suite_cpu.py COMMAND [ARGS...]

Example: ``CI=true python bench/suite_cpu.py .venv/bin/python -m pytest -n 2 --dist loadfile -q``

Every second it reads each new process's user + system time from /proc (a process that ends keeps its last reading,
so up to a second of each process's end is missed, and processes shorter than a second are missed whole). A forked
child without exec keeps its parent's command line: the jobs forked by a launcher or a zygote count under it.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def kind(args: list[str]) -> str:
    """A short name for a process from its command line.

    >>> kind(["/usr/lib/chromium/chromium", "--type=renderer", "--x"]), kind(["python", "-m", "builder", "train", "a"])
    ('chromium', 'python -m builder train')
    >>> kind(["/v/bin/python", "-c", "from builder.process.zygote import serve; serve(3)"])
    'python -c from builder.process.zygote import serve'
    """
    if not args:
        return "?"
    name = os.path.basename(args[0])
    if "chromium" in args[0]:
        return "chromium"
    if not name.startswith("python"):
        return name
    for i, a in enumerate(args[1:], 1):
        if a == "-m" and i + 1 < len(args):
            sub = args[i + 2] if args[i + 1] in ("builder", "builder.cli", "builder.jobs.queue") and i + 2 < len(args) else ""
            return f"python -m {args[i + 1]} {sub}".strip()
        if a == "-c" and i + 1 < len(args):
            return "python -c " + args[i + 1].split(";")[0].strip()[:60]
        if not a.startswith("-"):
            return "python " + os.path.basename(a)
    return "python"


def proc_cpu(pid: int | str) -> float:
    """User + system CPU seconds of a live process so far (/proc/<pid>/stat). Raises OSError once it is gone."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def sample(seen: dict[int, tuple[float, str]], skip: set[int]) -> None:
    """Update ``seen`` (pid -> (CPU seconds, kind)) from /proc, leaving out the ``skip`` pids."""
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) in skip:
            continue
        pid = int(p)
        try:
            cpu = proc_cpu(p)
            k = seen[pid][1] if pid in seen and seen[pid][1] != "?" else \
                kind([a.decode(errors="replace") for a in Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0") if a])
        except OSError:
            continue
        seen[pid] = (cpu, k)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    skip = {int(p) for p in os.listdir("/proc") if p.isdigit()}  # what ran before: not the command's
    seen: dict[int, tuple[float, str]] = {}
    t0 = time.monotonic()
    proc = subprocess.Popen(argv)
    while proc.poll() is None:
        sample(seen, skip)
        time.sleep(1.0)
    sample(seen, skip)
    wall = time.monotonic() - t0
    by, count = collections.Counter(), collections.Counter()
    for cpu, k in seen.values():
        by[k] += cpu
        count[k] += 1
    total = sum(by.values())
    print(f"wall {wall:.0f} s, CPU {total:.0f} s ({total / wall:.2f} cores), {len(seen)} processes", file=sys.stderr)
    for k, v in by.most_common(25):
        print(f"{v:8.0f} CPU-s {v / max(total, 1e-9):6.1%} {count[k]:5d}  {k}", file=sys.stderr)
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
