"""The thread rule of training processes (builder.runs.jobs.torch_threads)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.errors import TrainingError
from builder.jobs import queue as jobs
from tests.fuzz_budget import budget


@pytest.fixture
def no_thread_env(monkeypatch):
    for name in (jobs.ENV_TORCH_THREADS, "OMP_NUM_THREADS", jobs.ENV_MAX_JOBS):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@settings(max_examples=budget(40), deadline=None)
@given(macs=st.integers(0, 10**12), cap=st.integers(1, 64))
def test_one_thread_per_share_of_work_within_the_cap(macs, cap):
    with pytest.MonkeyPatch.context() as mp:
        for name in (jobs.ENV_TORCH_THREADS, "OMP_NUM_THREADS"):
            mp.delenv(name, raising=False)
        n = jobs.torch_threads(macs, cap=cap)
    assert 1 <= n <= cap
    if macs <= jobs.THREADS_MACS_PER_CORE:
        assert n == 1
    elif n < cap:
        assert (n - 1) * jobs.THREADS_MACS_PER_CORE < macs <= n * jobs.THREADS_MACS_PER_CORE


def test_explicit_settings_win(no_thread_env):
    no_thread_env.setenv("OMP_NUM_THREADS", "3")
    assert jobs.torch_threads(10, cap=1) == 3
    no_thread_env.setenv(jobs.ENV_TORCH_THREADS, "5")
    assert jobs.torch_threads(10**12, cap=64) == 5 and jobs.explicit_threads() == 5
    no_thread_env.setenv(jobs.ENV_TORCH_THREADS, "many")
    with pytest.raises(TrainingError, match="LAYERLAB_TORCH_THREADS must be a positive integer; received: 'many'"):
        jobs.torch_threads()
    no_thread_env.delenv(jobs.ENV_TORCH_THREADS)
    no_thread_env.setenv("OMP_NUM_THREADS", "x")  # torch ignores it; so do we
    assert jobs.explicit_threads() is None


def test_a_jobs_share_of_the_cores(no_thread_env):
    no_thread_env.setattr(jobs.os, "cpu_count", lambda: 9)
    no_thread_env.setenv(jobs.ENV_MAX_JOBS, "2")
    assert jobs.torch_threads() == 4  # (9 - 1) // 2: the cap of a job process before its model is known
    assert jobs.torch_threads(10**12) == 4 and jobs.torch_threads(1) == 1
