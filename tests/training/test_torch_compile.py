"""``torch_compile`` (issue 20): the training forward goes through torch.compile; evaluation, the test and the
saved weights use the module itself; training health samples gradients and updates without forward hooks; a job
that compiles may start the compiler's processes (the job sandbox leaves them allowed only then)."""

from __future__ import annotations

import math

import torch

from builder.data import load_dataset
from builder.jobs import job_sandbox
from builder.training.health import HealthMonitor
from builder.training.trainer import Trainer


def test_a_compiled_run_trains_and_samples_health_without_forward_hooks(tmp_path):
    ds = load_dataset("moons", n_samples=200)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    before = model[0].weight.detach().clone()
    health = HealthMonitor(every=3)
    t = Trainer(model, ds, {"epochs": 2, "batch_size": 32, "early_stopping": None, "health_every": 0,
                            "torch_compile": True, "lr": 0.01, "device": "cpu"}, [health], run_dir=tmp_path)
    result = t.fit()
    assert result.status == "finished" and t.compiled and t._fwd is not t.model
    assert all(math.isfinite(e["train_loss"]) for e in result.history) and result.test["accuracy"] > 0.5
    assert not torch.equal(model[0].weight, before)  # the compiled forward trained the module's own weights
    assert health.log.samples and not t.model._forward_hooks and not model[1]._forward_hooks
    stats = {k for s in health.log.samples for n in s["nodes"].values() for k in n}
    assert {"grad_norm", "update_ratio"} <= stats and not stats & {"act_mean", "dead"}


def test_only_a_compiling_job_may_start_processes():
    assert job_sandbox.compiles({"torch_compile": True})
    assert not job_sandbox.compiles({"torch_compile": False}) and not job_sandbox.compiles(None)
