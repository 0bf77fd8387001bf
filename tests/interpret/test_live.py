"""builder.interpret.live: the live-attribution callback, with a fake trainer and with the real one."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from builder.errors import ExplainError
from builder.interpret.attributions import explain
from builder.interpret.live import LiveAttributions


def _trainer(n: int = 10) -> SimpleNamespace:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3)).train()
    X = torch.randn(n, 4, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([2, 2, 0, 1, 0, 1, 2, 0, 1, 2][:n])
    return SimpleNamespace(model=model, device="cpu", dataset=SimpleNamespace(val=(X, y)))


def test_records_one_frame_per_epoch_on_fixed_samples():
    tr = _trainer()
    live = LiveAttributions("integrated_gradients", n_samples=4, n_steps=8)
    live.on_train_begin(tr)
    assert live.indices == [0, 1, 2, 3]  # first of each class (0, 2, 3), then the next in order
    extras = []
    for epoch in range(3):
        extras.append(live.on_epoch_end(tr, epoch, {"epoch": epoch + 1}))
        with torch.no_grad():  # training changes the weights between epochs
            tr.model[0].weight.add_(0.1)
    assert live.epochs == [1, 2, 3]
    assert live.stacked().shape == (3, 4, 4)
    summary = extras[0]["live_attributions"]
    assert summary["method"] == "integrated_gradients" and summary["n_samples"] == 4 and summary["frames"] == 1
    assert summary["seconds"] >= 0 and len(live.seconds) == 3
    assert not np.allclose(live.frames[0]["attributions"], live.frames[2]["attributions"])
    assert live.frames[0]["target"].tolist() == [2, 2, 0, 1]  # true labels by default
    live.on_train_end(tr, None)


def test_frame_equals_explain_and_leaves_training_state_alone():
    tr = _trainer()
    live = LiveAttributions("saliency", n_samples=3, target="predicted")
    live.on_train_begin(tr)
    live.on_epoch_end(tr, 0, {})
    assert tr.model.training and all(m.training for m in tr.model.modules())
    assert all(p.grad is None for p in tr.model.parameters())
    ref = explain(tr.model, tr.dataset.val[0][live.indices], "saliency").attributions.numpy()
    np.testing.assert_allclose(live.frames[0]["attributions"], ref)


def test_every_and_restart():
    tr = _trainer()
    live = LiveAttributions("saliency", n_samples=2, every=2)
    live.on_train_begin(tr)
    out = [live.on_epoch_end(tr, e, {"epoch": e + 1}) for e in range(5)]
    assert [o is None for o in out] == [True, False, True, False, True]
    assert live.epochs == [2, 4]
    live.on_train_begin(tr)
    assert live.frames == []


def test_bad_arguments():
    with pytest.raises(ExplainError, match="unknown method"):
        LiveAttributions("lime")
    with pytest.raises(ExplainError, match="n_samples"):
        LiveAttributions(n_samples=0)
    with pytest.raises(ExplainError, match="every"):
        LiveAttributions(every=0)
    with pytest.raises(ExplainError, match="target"):
        LiveAttributions(target="truth")
    with pytest.raises(ExplainError, match="no frames"):
        LiveAttributions().stacked()
    with pytest.raises(ExplainError, match="validation split"):
        LiveAttributions().on_train_begin(SimpleNamespace(dataset=None))


def test_with_the_real_trainer():
    train = importlib.import_module("builder.training.trainer")
    data = importlib.import_module("builder.data")
    ds = data.load_dataset("digits", seed=0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 10))
    live = LiveAttributions("integrated_gradients", n_samples=4, n_steps=8)
    assert isinstance(live, train.Callback)
    events: list[dict] = []
    trainer = train.Trainer(model, ds, {"epochs": 2, "device": "cpu", "checkpoint_every": 0}, callbacks=[live],
                            on_event=events.append)
    result = trainer.fit()
    assert result.status == "finished"
    assert live.epochs == [1, 2]
    assert live.stacked().shape == (2, 4, 1, 8, 8)
    epochs = [e for e in events if e.get("type") == "epoch"]
    assert [e["extras"]["live_attributions"]["epoch"] for e in epochs] == [1, 2]


def test_token_models_switch_to_layer_ig_and_errors_never_stop_training():
    import builder
    from builder.data import load_dataset
    from builder.interpret.live import LiveAttributions
    from builder.runs.pipeline import run_training

    project = builder.load_template("transformer")
    ds = load_dataset("sequence", n_samples=300)
    live = LiveAttributions("integrated_gradients", n_samples=3)
    result = run_training(project, ds, {"epochs": 2, "batch_size": 64}, callbacks=[live])
    assert result.status == "finished", result
    assert live.method == "layer_integrated_gradients" and len(live.frames) == 2 and live.error is None


def test_predict_single_logit_binary():
    import torch

    from builder.interpret.attributions import predict

    model = torch.nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.zero_()
    pred, conf = predict(model, torch.tensor([[-2.0], [3.0]]))
    assert pred.tolist() == [0, 1]
    assert torch.allclose(conf, torch.sigmoid(torch.tensor([2.0, 3.0])))


def test_a_long_run_keeps_its_frames_within_the_cap_and_spans_the_run(monkeypatch):
    """Frames are epochs x samples x the input's size, unbounded before: past MAX_FRAME_BYTES every other frame
    goes and the interval doubles, so the playback still spans the run."""
    from builder.interpret import live as live_mod

    tr = _trainer()
    live = LiveAttributions("saliency", n_samples=2)
    frame = 2 * 4 * 4  # bytes of one frame: 2 samples x 4 features, float32
    monkeypatch.setattr(live_mod, "MAX_FRAME_BYTES", 10 * frame)
    live.on_train_begin(tr)
    for e in range(100):
        live.on_epoch_end(tr, e, {"epoch": e + 1})
    assert sum(f["attributions"].nbytes for f in live.frames) <= 10 * frame
    assert live.epochs[0] == 1 and live.epochs[-1] >= 90 and live.epochs == sorted(live.epochs)
    assert len(live.epochs) >= 5 and live.every > 1


def test_frames_renamed_over_the_file_once_its_size_was_read_are_still_bounded(tmp_path, monkeypatch):
    """The job renames new frames over the file while a page plays it back: the size checked before opening was
    the old file's, and a far larger file renamed in between was read whole into the server. The tensors of the
    file actually open are bounded (from its header) before any is read."""
    import os

    from builder.interpret import live as live_mod
    from builder.training import checkpoint

    tr = _trainer()
    live = LiveAttributions("saliency", n_samples=2)
    live.on_train_begin(tr)
    live.on_epoch_end(tr, 0, {"epoch": 1})
    path = live.save(tmp_path / "live.safetensors")
    small = path.stat().st_size
    for e in range(1, 40):
        live.on_epoch_end(tr, e, {"epoch": e + 1})
    big = live.save(tmp_path / "big.safetensors")
    assert big.stat().st_size > 4 * small
    monkeypatch.setattr(live_mod, "MAX_FILE_BYTES", 2 * small)
    real = checkpoint.safe_open  # the one reader of tensor files (checkpoint.read_tensor_file) opens through it

    def renamed_first(name, *args, **kwargs):  # the job's rename lands between the size check and the open
        os.replace(big, path)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "safe_open", renamed_first)
    with pytest.raises(ExplainError, match="too large to play back"):
        live_mod.load_frames(path)


def test_a_frames_file_over_the_cap_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from builder.interpret import live as live_mod

    tr = _trainer()
    live = LiveAttributions("saliency", n_samples=2)
    live.on_train_begin(tr)
    for e in range(3):
        live.on_epoch_end(tr, e, {"epoch": e + 1})
    path = live.save(tmp_path / "live.safetensors")
    assert live_mod.load_frames(path)["epochs"] == [1, 2, 3]
    monkeypatch.setattr(live_mod, "MAX_FILE_BYTES", path.stat().st_size - 1)
    read = []
    monkeypatch.setattr("safetensors.safe_open", lambda *a, **k: read.append(a))
    with pytest.raises(ExplainError, match="too large to play back; received: 0 MiB, over 0 MiB"):
        live_mod.load_frames(path)
    assert not read
