"""Resume is bit-exact on CPU: every template, memory format, optimizer, with and without a scheduler.

A run stopped at an arbitrary step (mid-epoch) and resumed must end with the same weights and the same
loss curve as the uninterrupted run (``torch.equal``, not a tolerance). A training subprocess killed with
SIGKILL and resumed with ``layerlab runs resume`` must do the same. Datasets are cut to a few batches so
the whole matrix stays fast.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from builder.data.access import SYSTEM
from builder.data.splits import Dataset, Split
from builder.graph.templates import load_template
from builder.runs.pipeline import build_model, prepare
from builder.runs.store import RunStore
from builder.training.trainer import Trainer
from builder.training.weights import read_weights

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = {"mlp": "moons", "cnn": "digits", "resnet": "digits", "lstm": "sequence", "transformer": "sequence",
             "autoencoder": "digits"}
IMAGE = ("cnn", "resnet")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULERS = ("onecycle", "cosine", "plateau", "step")
EPOCHS, BATCH, N_TRAIN = 2, 16, 88  # 6 steps per epoch (the last one 8 samples), 12 in all


def _cases():
    """Each template with each optimizer; schedulers rotate (``none`` once per template); image templates
    alternate channels_last and contiguous, and the CNN gets every optimizer in channels_last too."""
    out = []
    for ti, tmpl in enumerate(TEMPLATES):
        for i, opt in enumerate(OPTIMIZERS):
            sched = "none" if i == 0 else SCHEDULERS[(i + ti) % 4]
            mf = ("channels_last" if (i + ti) % 2 == 0 else "contiguous") if tmpl in IMAGE else "auto"
            stop = 1 + (3 * ti + 5 * i) % 11  # 1..11: mostly mid-epoch, never the last step
            out.append((tmpl, opt, mf, sched, stop))
    for i, opt in enumerate(OPTIMIZERS):
        mf = "contiguous" if any(c[:3] == ("cnn", opt, "channels_last") for c in out) else "channels_last"
        if mf == "channels_last":
            out.append(("cnn", opt, mf, "onecycle" if i % 2 else "none", 2 + 3 * i))
    return out


CASES = _cases()


def _small(ds: Dataset) -> Dataset:
    def cut(s: Split, n: int) -> Split:
        X = s.X[:n].clone()
        return Split(X, X if s.y is s.X else s.y[:n].clone())
    return Dataset(ds.info, cut(ds.train, N_TRAIN), cut(ds.val, 32), cut(ds.test, 32))


def _setup(tmpl: str, opt: str, mf: str, sched: str):
    opts = {"n_samples": 200} if TEMPLATES[tmpl] in ("moons", "sequence") else {}
    cfg = {"epochs": EPOCHS, "batch_size": BATCH, "optimizer": opt, "memory_format": mf, "scheduler": sched,
           "log_every": 4, "lr": 0.01, "seed": 1}
    if sched == "plateau":
        cfg["scheduler_params"] = {"patience": 0}
    project, ds, cfg = prepare(load_template(tmpl), TEMPLATES[tmpl], cfg, dataset_options=opts)
    return project, _small(ds), cfg


def _curve(trainer: Trainer) -> list:
    keys = ("epoch", "train_loss", "val_loss", "train_metric", "val_metric", "lr", "grad_norm", "step")
    return [trainer.history.steps, [[e[k] for k in keys] for e in trainer.history.epochs]]


def _channels_last_optimizer_state(trainer: Trainer) -> bool:
    return any(t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
               for st in trainer.optimizer.state.values() for t in st.values() if isinstance(t, torch.Tensor))


@pytest.mark.parametrize("tmpl,opt,mf,sched,stop", CASES, ids=["-".join(map(str, c)) for c in CASES])
def test_stop_anywhere_and_resume_is_bit_exact(tmp_path, tmpl, opt, mf, sched, stop):
    project, ds, cfg = _setup(tmpl, opt, mf, sched)
    full = Trainer(build_model(project.graph, 1), ds, cfg, run_dir=tmp_path / "full")
    assert full.fit().status == "finished"
    part = Trainer(build_model(project.graph, 1), ds, cfg, run_dir=tmp_path / "part")
    part._stop_at_step = stop
    assert part.fit().status == "stopped" and part.global_step == stop
    # a different initialisation proves every weight comes from the checkpoint
    resumed = Trainer(build_model(project.graph, 7), ds, cfg, run_dir=tmp_path / "part",
                      resume_from=tmp_path / "part" / "checkpoints" / "last.safetensors")
    assert resumed.fit().status == "finished"
    assert _curve(resumed) == _curve(full)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    if mf == "channels_last":  # the moments sit in their parameter's layout, as in the uninterrupted run
        assert _channels_last_optimizer_state(resumed) == _channels_last_optimizer_state(full)


def test_every_template_optimizer_and_memory_format_is_covered():
    assert {c[0] for c in CASES} == set(TEMPLATES)
    assert {c[1] for c in CASES} == set(OPTIMIZERS)
    assert {c[2] for c in CASES if c[0] in IMAGE} == {"channels_last", "contiguous"}
    assert {(c[0], c[3] == "none") for c in CASES} == {(t, b) for t in TEMPLATES for b in (True, False)}
    assert {c[1] for c in CASES if c[0] == "cnn" and c[2] == "channels_last"} == set(OPTIMIZERS)


def _cli(*args: str, ws: Path) -> list[str]:
    return [sys.executable, "-m", "builder", *args, "--workspace", str(ws)]


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "LAYERLAB_TORCH_THREADS": "1", "PYTHONPATH": str(ROOT)}
TRAIN = ("train", "cnn", "--dataset", "digits", "--epochs", "12", "--batch-size", "32", "--optimizer", "adam",
         "--scheduler", "cosine", "--seed", "2", "--quiet")


@pytest.mark.slow
def test_kill_9_and_resume_matches_the_uninterrupted_run(tmp_path):
    """A CNN in channels_last with fused Adam, killed by SIGKILL after its second epoch, resumed by the CLI."""
    full_ws, kill_ws = tmp_path / "full", tmp_path / "kill"
    proc = subprocess.Popen(_cli(*TRAIN, ws=kill_ws), cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # wait for a state: two epochs logged
            if proc.poll() is not None:
                pytest.fail(f"training ended before it was killed: {proc.stderr.read().decode()[-500:]}")
            if (kill_ws / "layerlab.db").exists():
                runs = RunStore(kill_ws, mark_interrupted=False, actor=SYSTEM).list_runs()
                if runs and (runs[0]["epochs_done"] or 0) >= 2:
                    break
            time.sleep(0.05)
        else:
            pytest.fail("the training process did not finish two epochs in time")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    store = RunStore(kill_ws, actor=SYSTEM)
    rid = store.list_runs()[0]["id"]
    assert store.get(rid)["status"] == "interrupted"
    r = subprocess.run(_cli("runs", "resume", rid, "--quiet", ws=kill_ws), cwd=ROOT, env=ENV, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(_cli(*TRAIN, ws=full_ws), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    full_store = RunStore(full_ws, actor=SYSTEM)
    fid = full_store.list_runs()[0]["id"]
    a, _ = read_weights(full_store.weights_path(fid))
    b, _ = read_weights(store.weights_path(rid))
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    keys = ("epoch", "train_loss", "val_loss", "val_metric", "lr")
    assert [[e[k] for k in keys] for e in store.metrics(rid)] == [[e[k] for k in keys] for e in full_store.metrics(fid)]
