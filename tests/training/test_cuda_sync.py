"""On CUDA the trainer's steps never wait for the GPU (issue 20): torch's sync debug mode raises on any host
synchronisation inside the step loop (the loss is read only at log intervals and epoch ends, which are let through
here), with AMP on by default (bfloat16 where supported)."""

from __future__ import annotations

import pytest
import torch

from builder.data import load_dataset
from builder.training.trainer import Trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


class StrictSync(Trainer):
    """Sync debug mode ``error`` for the step loop; the planned reads (loss flush, epoch end, pause/stop/checkpoint
    handling) run in the default mode."""

    def _loop(self, *a):
        torch.cuda.set_sync_debug_mode("error")
        try:
            return super()._loop(*a)
        finally:
            torch.cuda.set_sync_debug_mode("default")

    def _allowed(name):  # noqa: N805 - a decorator factory inside the class body
        def wrap(self, *a, **kw):
            torch.cuda.set_sync_debug_mode("default")
            try:
                return getattr(Trainer, name)(self, *a, **kw)
            finally:
                torch.cuda.set_sync_debug_mode("error")
        return wrap

    _flush = _allowed("_flush")
    _end_epoch = _allowed("_end_epoch")
    _save = _allowed("_save")  # a checkpoint (at the run's end, or every checkpoint_interval_s) copies to the host
    _handle_flag = _allowed("_handle_flag")


@pytest.mark.parametrize("health_every", [0, 25])
def test_no_host_sync_per_step_on_cuda(tmp_path, health_every):
    ds = load_dataset("digits")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                torch.nn.Flatten(), torch.nn.Linear(16 * 16, 10))
    t = StrictSync(model, ds, {"epochs": 2, "device": "cuda", "batch_size": 64, "log_every": 10,
                               "health_every": health_every, "early_stopping": None}, run_dir=tmp_path)
    result = t.fit()
    assert result.status == "finished" and t.global_step > 20
    assert t.precision == ("bfloat16 autocast" if torch.cuda.is_bf16_supported() else "float16 autocast + GradScaler")
    assert next(t.model.parameters()).device.type == "cuda"


@pytest.mark.parametrize("spec", ["auto", "cuda", "CUDA"])
def test_a_cuda_device_equals_the_device_of_its_tensors(spec):
    """``cuda`` is resolved to ``cuda:N``: ``torch.device("cuda")`` never equals a tensor's ``cuda:0``, so a check
    of data against the trainer's device failed on every GPU host."""
    from builder.training.config import resolve_device

    dev = resolve_device(spec)
    assert dev == torch.zeros(1, device=dev).device and dev.index == torch.cuda.current_device()
