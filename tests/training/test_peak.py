"""Peak memory of a run (builder.training.peak): a reset starts a new maximum that an allocation raises.

The check runs in a fresh interpreter: a long-lived test worker's resident set (threads of earlier tests
allocating, a heap that never shrinks) can sit at its own peak, where a reset has nothing to lower.
"""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import json
import numpy as np
from builder.training.peak import peak_bytes, reset_peak
block = np.ones(200 * 2**20 // 8)  # 200 MiB touched
del block
before = peak_bytes("cpu")
reset_peak("cpu")
low = peak_bytes("cpu")
block = np.ones(200 * 2**20 // 8)
high = peak_bytes("cpu")
print(json.dumps([before, low, high]))
"""


def test_reset_starts_a_new_peak_that_an_allocation_raises():
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=True)
    before, low, high = json.loads(out.stdout.strip().splitlines()[-1])
    assert low <= before - 150 * 2**20  # the freed 200 MiB block is gone from the new peak
    assert high >= low + 150 * 2**20  # and a new one raises it again
