"""CPU seconds (user + sys) of a command and every process it starts, detached ones included.

Usage: python bench/cpu_of.py COMMAND [ARGS...]   (prints `cpu_s ... user ... sys ... wall ...` on stderr)

Example: ``CI=true python bench/cpu_of.py .venv/bin/python -m pytest -q -n 0 tests/jobs/test_ray_executor.py``

`/usr/bin/time` counts only the descendants that were waited for; job launchers and Ray daemons that the tests
leave detached are reparented to init and missed. This wrapper makes itself a child subreaper
(PR_SET_CHILD_SUBREAPER), so orphans are reparented to it, and reaps every one before it reports
``getrusage(RUSAGE_CHILDREN)``.
"""

from __future__ import annotations

import ctypes
import os
import resource
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1)
    t0 = time.monotonic()
    code = subprocess.call(argv)
    while True:  # the orphans that are still running (reparented to us): wait for each
        try:
            os.wait()
        except ChildProcessError:
            break
    wall = time.monotonic() - t0
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"cpu_s {r.ru_utime + r.ru_stime:.1f} user {r.ru_utime:.1f} sys {r.ru_stime:.1f} wall {wall:.1f} "
          f"exit {code}", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
