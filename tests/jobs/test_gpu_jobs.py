"""On a CUDA host, a web owner's job trains on the GPU inside its sandbox: files confined by Landlock (where the
kernel has it), the limits and the process filter on; with ``torch_compile`` Triton compiles for the GPU (it starts
``ptxas`` and writes its cache in the job's private home); the page's model probe then explains the GPU-trained run
(its weights written from CUDA tensors) on the CPU. The confinement rules were written and tested on CPU hosts:
a GPU job opens ``/dev/nvidia*``, the driver's files under ``/proc`` and ``/sys`` and the CUDA libraries.

These need a CUDA GPU (the lent device machine; bench/RESULTS.md "On a lent GPU"); every other host skips them,
as tests/training/test_cuda_sync.py does."""

from __future__ import annotations

import contextlib
import os
import signal

import pytest
import torch

from builder.data.access import SYSTEM, Actor
from builder.graph.templates import load_template
from builder.jobs import quotas, warm
from builder.jobs.probe import ModelProbe, ProbeSession
from builder.jobs.queue import JobSpec, request, submit, wait
from builder.jobs.quotas import QuotaError
from builder.process import landlock
from builder.runs.store import RunStore
from tests.helpers import until

pytestmark = [pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
              pytest.mark.filterwarnings("ignore::UserWarning")]

OWNER = "anon:" + "c" * 32  # a web visitor: confined (the CLI's local user is not)
TIMEOUT = 300


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAYERLAB_MAX_JOBS", "2")
        mp.setenv("LAYERLAB_LAUNCHER_IDLE_S", "60")
        mp.delenv("LAYERLAB_LAUNCHER_DIR", raising=False)
        s = RunStore(tmp_path_factory.mktemp("gpu") / "ws", actor=SYSTEM)
        yield s
    with contextlib.suppress(OSError, ValueError):
        os.kill(int((s.workspace / warm.LAUNCHER_PID).read_text()), signal.SIGTERM)


def _finished(store: RunStore, rid: str) -> str:
    """The job's log once it finished (the test fails with the run's message and log otherwise)."""
    status = wait(store, [rid], TIMEOUT)[rid]
    log = store.folder(rid).job_log.read_text(errors="replace")
    assert status == "finished", (store.get(rid)["message"], log[-3000:])
    return log


def _confined(log: str) -> None:
    if landlock.abi():
        assert "job: files confined by Landlock" in log, log[-2000:]
    else:
        assert "job: files not confined: this kernel has no Landlock" in log, log[-2000:]


@pytest.mark.parametrize("device", ["cuda", "auto"])
def test_a_confined_web_owners_job_trains_on_the_gpu(store, device):
    spec = JobSpec(project=load_template("cnn").model_dump(), dataset="digits", owner=OWNER,
                   config={"epochs": 2, "device": device, "early_stopping": None})
    rid = submit(store, spec)
    log = _finished(store, rid)
    _confined(log)
    assert ", GPU 0 (estimate" in log, log[-2000:]  # placed on the GPU, not fallen back to the CPU
    run = store.get(rid)
    assert run["config"]["device"] == device  # (it ended "or True": a run without a curve passed)
    assert [e["epoch"] for e in store.metrics(rid, "epoch")] == [1, 2] and "accuracy" in run["test_metrics"]

    # the page session's probe (a confined child on the CPU) explains the GPU-trained run
    probe = ModelProbe()
    try:
        session = ProbeSession(probe, store.as_actor(Actor(OWNER)), rid, "test")
        assert session.explain(0, "saliency").attributions.shape[-2:] == (8, 8)
        if landlock.abi():
            assert probe.files.startswith("files confined by Landlock"), probe.files
    finally:
        probe.close()


def test_a_confined_job_with_torch_compile_compiles_for_the_gpu(store):
    """Triton's ptxas is a new process and its kernels a cache in the job's home: the compiling job's process
    filter is off, its files stay confined. The job is forked by the warm launcher, which imported Triton (with
    torch._dynamo) under the server's home: a forked job wrote ``~/.triton`` there and failed "Permission denied"
    (on a lent H100, whenever this test ran after another of this file on its worker)."""
    project = load_template("mlp").model_dump()
    spec = JobSpec(project=project, dataset="moons", dataset_options={"n_samples": 256}, owner=OWNER,
                   config={"epochs": 1, "batch_size": 128, "device": "cpu", "early_stopping": None})
    _finished(store, submit(store, spec))  # starts the warm launcher if no earlier test did
    # running, not only starting: a job submitted while it imports torch is launched cold (it was, once, on a
    # lent H200 with this file's tests spread over eight workers, each with its own workspace and launcher)
    until(lambda: warm._launcher_running(store.workspace), "the warm launcher", TIMEOUT)
    spec = JobSpec(project=project, dataset="moons", dataset_options={"n_samples": 256}, owner=OWNER,
                   config={"epochs": 2, "batch_size": 128, "device": "cuda", "early_stopping": None,
                           "torch_compile": True})
    log = _finished(store, submit(store, spec))
    _confined(log)
    assert "forked by the warm launcher" in log and ", GPU 0 (estimate" in log, log[-2000:]


def test_a_stopped_gpu_job_resumes_on_the_gpu_within_its_owners_gpu_quota(store, monkeypatch):
    """A web owner's GPU job stopped after a checkpoint (written from CUDA tensors by the confined job, read whole
    through one handle by the resume) resumes on the GPU: the resume takes its device from the job's own
    ``job.json`` and is admitted against the GPU-seconds the owner really used, refused past them."""
    spec = JobSpec(project=load_template("mlp").model_dump(), dataset="moons", dataset_options={"n_samples": 2000},
                   owner=OWNER, config={"epochs": 60, "batch_size": 8, "device": "cuda", "early_stopping": None,
                                        "checkpoint_every": 1, "seed": 3})
    rid = submit(store, spec)
    until(lambda: (store.get(rid)["epochs_done"] or 0) >= 2, "two epochs on the GPU", TIMEOUT)
    request(store, rid, "stop")
    assert wait(store, [rid], TIMEOUT) == {rid: "stopped"}
    first = store.folder(rid).job_log.read_text(errors="replace")
    _confined(first)
    assert ", GPU 0 (estimate" in first, first[-2000:]
    done = store.get(rid)["epochs_done"]
    used = quotas.usage(store, OWNER)["gpu_seconds"]
    assert used > 0  # the stopped run's GPU time counts

    resume = JobSpec(project={}, dataset="", owner=OWNER, resume_run=rid, config={"epochs": done + 2})
    monkeypatch.setenv("LAYERLAB_QUOTA_GPU_SECONDS", str(max(int(used) - 1, 0)))
    with pytest.raises(QuotaError, match="GPU-seconds"):
        submit(store, resume)
    monkeypatch.setenv("LAYERLAB_QUOTA_GPU_SECONDS", str(int(used) + 3600))
    assert submit(store, resume) == rid
    log = _finished(store, rid)
    assert log.count(", GPU 0 (estimate") >= 2, log[-3000:]  # the resumed job is placed on the GPU again
    assert [e["epoch"] for e in store.metrics(rid)] == list(range(1, done + 3))
    assert quotas.usage(store, OWNER)["gpu_seconds"] > used


@pytest.mark.parametrize("layer", ["LSTM", "GRU"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_a_masked_recurrent_layer_gives_on_the_gpu_what_it_gives_on_the_cpu(layer, bidirectional):
    """The padding mask packs the sequences: pack_padded_sequence wants its lengths on the CPU whatever the data's
    device; forward and backward on CUDA match the CPU's."""
    from builder import compile_graph
    from builder.graph.registry import PAD_ID, PADDING_MASK

    graph = {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [6], "modality": "tokens", "vocab_size": 12}},
                       {"id": "emb", "type": "Embedding", "params": {"embedding_dim": 8}},
                       {"id": "r", "type": layer, "params": {"hidden_size": 8, "bidirectional": bidirectional,
                                                              "output_mode": "last"}}],
             "edges": [{"source": "x", "target": "emb"}, {"source": "emb", "target": "r"},
                       {"source": "x", "source_port": PADDING_MASK, "target": "r", "target_port": PADDING_MASK}]}
    torch.manual_seed(0)
    cpu = compile_graph(graph)
    gpu = compile_graph(graph)
    gpu.load_state_dict(cpu.state_dict())
    gpu.cuda()
    x = torch.tensor([[3, 4, 5, PAD_ID, PAD_ID, PAD_ID], [1, 2, 3, 4, 5, 6], [7, PAD_ID, 8, PAD_ID, PAD_ID, 9]])
    tf32 = torch.backends.cudnn.allow_tf32  # cuDNN's RNNs take TF32 by default: ~2e-3 relative, not a mask's error
    torch.backends.cudnn.allow_tf32 = False
    try:
        want, got = cpu(x), gpu(x.cuda())
        torch.testing.assert_close(got.cpu(), want, rtol=1e-4, atol=1e-5)
        want.sum().backward()
        got.sum().backward()
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    for (name, a), (_, b) in zip(cpu.named_parameters(), gpu.named_parameters()):
        torch.testing.assert_close(b.grad.cpu(), a.grad, rtol=1e-3, atol=1e-5, msg=name)
