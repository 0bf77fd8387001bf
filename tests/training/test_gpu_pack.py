"""GPU jobs that share (issue 20): the packing decision with faked GPUs (this machine has none), the slot claim
that records it, and the job limit per GPU."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.data.access import SYSTEM
from builder.graph.memory import training_memory
from builder.graph.shapes import infer_shapes
from builder.graph.templates import load_template
from builder.jobs import queue as jobs
from builder.runs.store import RunStore
from builder.training import gpus as G
from tests.fuzz_budget import budget

GiB = G.GiB
H100 = 80 * GiB


def test_one_gpu_takes_eight_small_jobs_and_the_rest_wait():
    queue = [(f"r{i:02d}", 1 * GiB) for i in range(16)]
    out = G.pack(queue, [G.Gpu(0, free=H100 - GiB, total=H100)], running=[], per_gpu=8)
    assert [rid for rid, gpu in out.items() if gpu == 0] == [f"r{i:02d}" for i in range(8)]
    assert all(out[f"r{i:02d}"] is None for i in range(8, 16))


def test_two_gpus_spread_by_count_and_memory_decides_who_waits():
    gpus = [G.Gpu(0, free=20 * GiB, total=H100), G.Gpu(1, free=H100, total=H100)]  # GPU 0: another user's 60 GiB
    out = G.pack([("small1", 2 * GiB), ("small2", 2 * GiB), ("big", 40 * GiB), ("huge", 60 * GiB),
                  ("small3", 2 * GiB)], gpus, running=[], per_gpu=8)
    # small1 on the emptier GPU 1 (more room), small2 then on GPU 0 (fewer jobs), big only fits on GPU 1,
    # huge fits nowhere any more (GPU 1: 80 - 42 GiB placed), small3 goes to GPU 0 (one job vs two)
    assert out == {"small1": 1, "small2": 0, "big": 1, "huge": None, "small3": 0}


def test_running_jobs_count_before_they_allocate():
    gpu = G.Gpu(0, free=H100, total=H100)  # the driver still reports everything free
    running = [G.Placed("a", 0, 50 * GiB)]
    assert G.place(30 * GiB, [gpu], running, per_gpu=8) is None  # 80 - 50 - reserve < 30
    assert G.place(25 * GiB, [gpu], running, per_gpu=8) == 0
    allocated = G.Gpu(0, free=30 * GiB, total=H100)  # once it has allocated, the free memory shows it
    assert G.place(25 * GiB, [allocated], [G.Placed("a", 0, 50 * GiB, used=50 * GiB)], per_gpu=8) == 0
    assert G.place(1, [gpu], [G.Placed(str(i), 0, 1) for i in range(3)], per_gpu=3) is None  # the per-GPU cap


@settings(max_examples=budget(40), deadline=None)
@given(needs=st.lists(st.integers(1, 50 * GiB), max_size=20),
       frees=st.lists(st.integers(0, H100), min_size=1, max_size=3), per_gpu=st.integers(1, 8))
def test_packing_never_overfills(needs, frees, per_gpu):
    gpus = [G.Gpu(i, free=f, total=H100) for i, f in enumerate(frees)]
    out = G.pack([(str(i), n) for i, n in enumerate(needs)], gpus, running=[], per_gpu=per_gpu)
    for g in gpus:
        mine = [needs[int(r)] for r, gpu in out.items() if gpu == g.index]
        assert len(mine) <= per_gpu
        assert sum(mine) <= max(0, g.total - G.RESERVE_BYTES)
        assert sum(mine) <= max(0, g.free - G.RESERVE_BYTES)  # nothing placed has allocated yet


def test_job_limit_per_gpu(monkeypatch):
    monkeypatch.delenv(jobs.ENV_MAX_JOBS, raising=False)
    monkeypatch.delenv(G.ENV_JOBS_PER_GPU, raising=False)
    assert jobs.max_jobs(gpus=2) == 2 * G.JOBS_PER_GPU
    monkeypatch.setenv(G.ENV_JOBS_PER_GPU, "3")
    assert jobs.max_jobs(gpus=1) == 3
    monkeypatch.setattr(jobs.os, "cpu_count", lambda: 4)
    assert jobs.max_jobs(gpus=0) == 3  # CPU-only hosts keep cores - 1
    monkeypatch.setenv(G.ENV_JOBS_PER_GPU, "0")
    with pytest.raises(Exception, match="LAYERLAB_JOBS_PER_GPU must be a positive integer; received: '0'"):
        jobs.max_jobs(gpus=1)


def test_claim_records_the_gpu_and_the_next_job_sees_it(tmp_path, monkeypatch):
    """Three queued jobs, two fake GPUs: each with room for one job."""
    monkeypatch.setattr(jobs, "GPU_USED", lambda: {})  # the first job has allocated nothing yet
    store = RunStore(tmp_path, actor=SYSTEM)
    ids = [store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}) for _ in range(3)]
    fake = [G.Gpu(0, free=5 * GiB, total=16 * GiB), G.Gpu(1, free=4 * GiB, total=16 * GiB)]
    need = 3 * GiB
    got = [jobs.claim_gpu(store, rid, need, fake, limit=16, per_gpu=8) for rid in ids]
    assert got == [0, 1, None]  # the third waits: 5 GiB free on GPU 0 less the first job's coming 3 GiB is too little
    assert store.get(ids[0])["status"] == "running" and store.get(ids[2])["status"] == "queued"
    assert store.get(ids[1])["environment"]["gpu"] == 1
    assert store.get(ids[1])["environment"]["gpu_need"] == need


def test_job_need_is_the_graph_estimate_plus_a_context():
    spec = jobs.JobSpec(project=load_template("cnn").model_dump(), dataset="digits", config={"batch_size": 32})
    est = training_memory(infer_shapes(load_template("cnn").graph), 32, device="cuda", loss="ce").peak  # task unset
    assert jobs.job_need(spec) == est + G.CUDA_CONTEXT_BYTES


def test_a_job_on_a_numbered_gpu_is_placed_on_that_gpu_and_counted_there(tmp_path, monkeypatch):
    """A project, a link or the Train form may name a GPU (``device: cuda:1``). Such a job was never placed: it took
    a CPU slot at once and recorded no GPU and no estimate, so the packer neither kept it off a full GPU nor counted
    it on its own (two fake GPUs, one job per GPU, GPU 1 held by another person's job: the ``cuda:1`` job was let
    start beside it, and failed only because this machine has no GPU). Now it claims a slot on its GPU like any job:
    it waits while GPU 1 is full, whatever room GPU 0 has, and is recorded on GPU 1 with its estimate once it fits."""
    import json
    import os
    import signal

    import torch

    monkeypatch.setenv(G.ENV_JOBS_PER_GPU, "1")
    monkeypatch.setenv(jobs.ENV_MAX_JOBS, "16")  # slots to spare on this host: only its GPU's may hold it back
    monkeypatch.setattr(jobs, "launch_warm", lambda *a: os.getpid())  # recorded, not launched: run in process
    two = [G.Gpu(0, free=H100, total=H100), G.Gpu(1, free=H100, total=H100)]
    monkeypatch.setattr(jobs, "GPU_QUERY", lambda: list(two))
    monkeypatch.setattr(jobs, "GPU_USED", lambda: {})
    store = RunStore(tmp_path / "ws", actor=SYSTEM)
    theirs = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner="anon:" + "b" * 32)
    assert jobs.claim_gpu(store, theirs, GiB, two[1:], limit=16, per_gpu=1) == 1  # another person's job on GPU 1

    spec = jobs.JobSpec(project=json.loads(load_template("mlp").to_json()), dataset="moons",
                        dataset_options={"n_samples": 100}, config={"epochs": 1, "device": "cuda:1"})
    rid = jobs.submit(store, spec)
    store.set_control(rid, "stop")  # a stop asked while it waits ends the wait: the job returns at its first look
    handler, threads = signal.getsignal(signal.SIGTERM), torch.get_num_threads()
    try:
        jobs.run_job(store.workspace, rid)
    finally:
        signal.signal(signal.SIGTERM, handler)
        torch.set_num_threads(threads)
    run = store.get(rid)
    # it waited for GPU 1 (GPU 0's room unused); a job let start was stopped by its control thread instead
    assert run["status"] == "stopped" and run["message"].startswith("stopped while queued"), run["message"]
    assert "gpu" not in (run.get("environment") or {})

    store.update_status(theirs, "finished")  # GPU 1 is free again
    later = jobs.submit(store, spec)
    assert jobs._wait_for_slot(store, later, GiB, list(two), device="cuda:1") == (True, 1)
    env = store.get(later)["environment"]
    assert env["gpu"] == 1 and env["gpu_need"] == GiB  # counted on GPU 1 by the next job's placement
