"""Trainer: settings, tasks, events and callbacks, resume equality, NaN guard, jobs, evaluation, templates."""

from __future__ import annotations

import math
import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score, precision_recall_fscore_support

from builder.data import Dataset, DatasetInfo, Split, load_dataset
from builder.data.access import SYSTEM
from builder.errors import TrainingError
from builder.training.callbacks import Callback
from builder.training.config import TrainConfig, resolve_device
from builder.training.events import Channel, History
from builder.training.metrics import classification_metrics, evaluate
from builder.training.trainer import Trainer, TrainingJob
from tests.fuzz_budget import budget


def mlp(d_in=2, d_out=2, hidden=16, seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(d_in, hidden), torch.nn.ReLU(), torch.nn.Dropout(dropout),
                               torch.nn.Linear(hidden, d_out))



@pytest.fixture(scope="module")
def moons():
    return load_dataset("moons", n_samples=400)


# ------------------------------------------------------------------------------------------ settings
@pytest.mark.parametrize("bad,match", [
    ({"lr": -1}, "lr"), ({"epochs": 0}, "epochs"), ({"optimizer": "lbfgs"}, "optimizer"),
    ({"colour": 1}, "colour"), ({"optimizer": "adam", "nesterov": True}, "nesterov"),
    ({"scheduler": "step", "scheduler_params": {"warmup": 3}}, "no parameter.*warmup"),
    ({"device": "tpu"}, "device"), ({"device": "x"}, "device"), ({"device": "xla"}, "device"),
])
def test_config_errors(bad, match):
    with pytest.raises(TrainingError, match=match):
        TrainConfig.from_dict(bad)


SCHEDULER_VALUES = st.one_of(st.sampled_from([-1e30, -3, -1.0, -0.5, 0, 0.5, 1, 1.0, 2, 2.5, 5, 1e4, 1e30,
                                                 float("nan"), float("inf"), -float("inf")]),
                              st.floats(-10, 10), st.integers(-5, 50))


@settings(max_examples=budget(300), deadline=None)
@given(scheduler=st.sampled_from(["step", "cosine", "onecycle", "plateau"]), data=st.data())
def test_scheduler_settings_that_validate_train(scheduler, data):
    """Issue 28 item 11's class (a validated setting failing in training): a scheduler's parameters were checked
    by name only, so ``layerlab validate`` accepted one-cycle's pct_start 5, a div_factor of 0 and the plateau's
    factor 2, each failing the run at its first step ("ValueError: Expected float between 0 and 1"), and a gamma
    or eta_min of -1, which trained with a learning rate of -0.01 and -0.495 (gradient ascent). Any parameters
    TrainConfig accepts build their scheduler and keep every learning rate finite and at least 0."""
    from builder.training.config import SCHEDULER_PARAMS
    from builder.training.trainer import build_optimizer, build_scheduler

    names = data.draw(st.lists(st.sampled_from(sorted(SCHEDULER_PARAMS[scheduler])), unique=True))
    params = {n: data.draw(SCHEDULER_VALUES, label=n) for n in names}
    try:
        cfg = TrainConfig.from_dict({"epochs": 4, "lr": 0.01, "scheduler": scheduler, "scheduler_params": params})
    except TrainingError as e:
        assert "received:" in str(e) and "Traceback" not in str(e)
        return
    model = torch.nn.Linear(2, 1)
    opt = build_optimizer(model.parameters(), cfg)
    sched, when = build_scheduler(opt, cfg, 3)
    for _ in range(cfg.epochs * 3):
        opt.step()
        if when == "plateau":
            sched.step(1.0)
        else:
            sched.step()
        lr = opt.param_groups[0]["lr"]
        assert math.isfinite(lr) and lr >= 0, (scheduler, params, lr)


@pytest.mark.parametrize("params", [{"div_factor": 5e-324}, {"final_div_factor": 1e-320}, {"div_factor": 1e-300},
                                    {"div_factor": 0.5}])
def test_a_one_cycle_that_starts_or_ends_above_its_learning_rate_is_refused(params):
    """A div_factor of 5e-324 was "above 0" and made the first learning rate infinite (then NaN); 1e-300 made it
    1e+298 (the property test above found them under its default profile)."""
    with pytest.raises(TrainingError, match="at least 1"):
        TrainConfig.from_dict({"epochs": 4, "lr": 0.01, "scheduler": "onecycle", "scheduler_params": params})


def test_a_run_recorded_before_the_scheduler_rules_still_reads_but_does_not_train(tmp_path):
    """Runs kept a gamma of -1 before the rules: their settings still read (the Runs and Explain pages; Explain
    said the rule instead of explaining), and training from them again (a resume) is refused."""
    from builder.data.access import SYSTEM
    from builder.graph.templates import load_template
    from builder.runs.store import RunStore

    store = RunStore(tmp_path, actor=SYSTEM)
    rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 2}, owner="user:ann")
    old = {"epochs": 2, "scheduler": "step", "scheduler_params": {"gamma": -1.0}}
    store.update_run(rid, config=old)
    assert store.get(rid).config.scheduler_params == {"gamma": -1.0}
    with pytest.raises(TrainingError, match="gamma of scheduler step"):
        TrainConfig.from_dict(store.get(rid).config)
    with pytest.raises(TrainingError, match="no parameter"):  # a name no scheduler takes is refused all the same
        TrainConfig.from_dict({**old, "scheduler_params": {"warmup": 1}}, stored=True)


def test_every_scheduler_parameter_has_a_rule():
    """A parameter added to a scheduler without a range would reach torch unchecked."""
    from builder.training.config import SCHEDULER_PARAMS, SCHEDULER_RULES

    assert {n for p in SCHEDULER_PARAMS.values() for n in p} <= set(SCHEDULER_RULES)


@pytest.mark.parametrize("params,said", [
    ({"scheduler": "onecycle", "scheduler_params": {"pct_start": 5, "div_factor": 0}},
     ["pct_start of scheduler onecycle", "div_factor of scheduler onecycle"]),
    ({"scheduler": "cosine", "scheduler_params": {"eta_min": -1}}, ["eta_min of scheduler cosine"]),
    ({"scheduler": "step", "scheduler_params": {"gamma": -1, "step_size": 2.5}},
     ["gamma of scheduler step", "step_size of scheduler step"]),
])
def test_layerlab_validate_names_every_bad_scheduler_parameter(tmp_path, capsys, params, said):
    """The door: ``layerlab validate`` said "ok" for these projects, whose runs then failed or trained backwards."""
    from builder.cli.main import main
    from builder.graph.templates import load_template

    p = load_template("mlp")
    path = tmp_path / "p.json"
    p.model_copy(update={"training": {**(p.training or {}), **params}}).save(path)
    assert main(["validate", str(path)]) != 0
    err = capsys.readouterr().err
    assert all(s in err for s in said) and "Traceback" not in err, err


def test_config_json_round_trip_and_device():
    cfg = TrainConfig.from_dict({"epochs": 3, "scheduler": "onecycle"}, lr=0.1)
    assert TrainConfig.from_dict(cfg.model_dump()) == cfg and cfg.lr == 0.1
    assert resolve_device("auto").type in ("cuda", "mps", "cpu")
    assert resolve_device("cpu").type == "cpu"


def test_a_gpu_runs_settings_are_read_where_there_is_no_gpu():
    """A run trained with ``device: cuda`` is read by processes without a GPU (the Explain probe hides it, a
    workspace moved to a CPU host, a cluster whose GPU nodes the server lacks). Its settings failed to parse there:
    Explain of every such run said "device 'cuda' requested but CUDA is not available" (found on a lent H200). The
    settings are checked for a device's form; the process that trains asks whether it has one."""
    for spec in ("cuda", "cuda:1", "CUDA", "mps"):
        assert TrainConfig.from_dict({"device": spec}).device == spec
    if not torch.cuda.is_available():
        with pytest.raises(TrainingError, match="requested but CUDA is not available"):
            resolve_device("cuda")


TASKS = ("multiclass", "binary", "regression", "reconstruction")


@settings(max_examples=budget(60), deadline=None)
@given(task=st.sampled_from((*TASKS, None)), n_train=st.one_of(st.none(), st.integers(0, 10**6)),
       own=st.integers(1, 500), flag=st.integers(1, 500))
def test_defaults_per_task_and_their_precedence(task, n_train, own, flag):
    """TrainConfig is the one home of the starting values: task defaults < project settings < overrides."""
    d = TrainConfig.defaults(task, n_train)
    small = n_train is not None and n_train < 500
    assert TrainConfig.from_dict(d).model_dump() == d  # every default is a valid setting
    assert d["batch_size"] == (32 if small else 64)
    assert d["epochs"] == max(40 if task in ("regression", "reconstruction") else 20, 50 if small else 0)
    assert TrainConfig.defaults() == TrainConfig().model_dump()  # no task known: the field defaults
    project = {"dataset": "moons", "task": task, "epochs": own}  # non-field keys are ignored
    assert TrainConfig.resolve(task, n_train, project).epochs == own
    cfg = TrainConfig.resolve(task, n_train, project, {"epochs": flag, "early_stopping": None})
    assert cfg.epochs == flag and cfg.early_stopping is None and cfg.batch_size == d["batch_size"]
    assert TrainConfig.resolve(task, n_train, project, TrainConfig(lr=0.5)).epochs == own  # only set fields win


def test_prepare_resolves_defaults_for_the_dataset():
    """The pipeline resolves with the loaded dataset's task and training-split size."""
    from builder.graph.templates import load_template
    from builder.runs.pipeline import prepare

    project = load_template("mlp")
    project.training = {"dataset": "moons", "lr": 0.02}
    _, ds, cfg = prepare(project, None, None, dataset_options={"n_samples": 300})
    assert len(ds.train) < 500
    assert cfg == TrainConfig.resolve(ds.info.task, len(ds.train), project.training)
    assert (cfg.epochs, cfg.batch_size, cfg.lr) == (50, 32, 0.02)
    _, _, cfg = prepare(project, None, {"epochs": 3}, dataset_options={"n_samples": 300})
    assert cfg.epochs == 3


# ------------------------------------------------------------------------------------ events, tasks
class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_train_begin(self, trainer):
        self.calls.append("begin")
        assert trainer.dataset.val.X.device == trainer.device

    def on_epoch_end(self, trainer, epoch, logs):
        self.calls.append(("epoch", epoch, logs["val_loss"]))
        return {"attribution": [epoch]}

    def on_train_end(self, trainer, result):
        self.calls.append(("end", result.status))


def test_fit_emits_events_and_calls_callbacks(moons):
    events, rec = [], Recorder()
    r = Trainer(mlp(), moons, {"epochs": 3, "lr": 0.01, "log_every": 2}, [rec], on_event=events.append).fit()
    assert r.status == "finished" and r.epochs_completed == 3
    kinds = [e["type"] for e in events]
    assert kinds[0] == "status" and kinds[-1] == "status" and "done" in kinds
    ep = [e for e in events if e["type"] == "epoch"]
    assert [e["epoch"] for e in ep] == [1, 2, 3] and ep[1]["extras"] == {"attribution": [1]}
    for key in ("train_loss", "val_loss", "train_metric", "val_metric", "metric_name", "lr", "grad_norm",
                "samples_per_s", "eta_s"):
        assert key in ep[0]
    assert ep[-1]["eta_s"] == 0 and ep[0]["metric_name"] == "accuracy"
    steps = [e for e in events if e["type"] == "step"]
    assert steps and all(math.isfinite(e["loss"]) for e in steps)
    assert rec.calls[0] == "begin" and rec.calls[-1] == ("end", "finished")
    test = r.test
    assert {"accuracy", "macro_f1", "confusion_matrix", "per_class", "loss"} <= set(test)
    assert sum(map(sum, test["confusion_matrix"])) == len(moons.test)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "rmsprop"])
@pytest.mark.parametrize("scheduler", ["none", "step", "cosine", "onecycle", "plateau"])
def test_every_optimizer_and_schedule_runs(moons, optimizer, scheduler):
    cfg = {"epochs": 2, "optimizer": optimizer, "scheduler": scheduler, "lr": 0.01, "weight_decay": 1e-4,
           "grad_clip": 1.0, "nesterov": optimizer == "sgd"}
    r = Trainer(mlp(), moons, cfg).fit()
    assert r.status == "finished" and all(math.isfinite(e["train_loss"]) for e in r.history)


def test_cosine_and_step_change_lr(moons):
    r = Trainer(mlp(), moons, {"epochs": 4, "scheduler": "step", "scheduler_params": {"step_size": 2, "gamma": 0.5},
                               "lr": 0.1, "optimizer": "sgd"}).fit()
    assert [e["lr"] for e in r.history] == pytest.approx([0.1, 0.1, 0.05, 0.05])


def test_binary_with_one_logit_uses_bce():
    ds = load_dataset("breast_cancer")
    r = Trainer(mlp(30, 1), ds, {"epochs": 5, "lr": 0.01}).fit()
    assert r.test["accuracy"] > 0.85 and len(r.test["confusion_matrix"]) == 2


@pytest.mark.parametrize("loss", ["mse", "l1", "huber"])
def test_regression_losses(loss):
    ds = load_dataset("diabetes")
    r = Trainer(mlp(10, 1), ds, {"epochs": 8, "lr": 0.01, "loss": loss}).fit()
    assert {"mse", "mae", "r2"} <= set(r.test) and r.test["r2"] > 0.2
    assert r.history[-1]["metric_name"] == "r2"


def test_reconstruction_loss_falls():
    ds = load_dataset("digits", task="reconstruction", flatten=True)
    torch.manual_seed(0)
    ae = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 64))
    r = Trainer(ae, ds, {"epochs": 4, "lr": 0.01}).fit()
    assert r.history[-1]["val_loss"] < 0.7 * r.history[0]["val_loss"]
    assert {"mse", "r2"} <= set(r.test)


def test_f1_metric_and_early_stopping(moons):
    r = Trainer(mlp(), moons, {"epochs": 20, "lr": 1e-4, "early_stopping": 2, "early_stopping_delta": 1.0,
                                  "metric": "f1"}).fit()
    assert r.status == "finished" and r.epochs_completed < 20 and "early stopping" in r.message
    assert r.epochs_completed == 3 and r.best_epoch == 1 and r.history[0]["metric_name"] == "f1"


def test_mismatched_model_is_a_clear_error(moons):
    with pytest.raises(TrainingError, match="3 values but dataset 'moons' has 2 classes"):
        Trainer(mlp(2, 3), moons, {"epochs": 1}).fit()
    with pytest.raises(TrainingError, match="cannot process"):
        Trainer(mlp(5, 2), moons, {"epochs": 1}).fit()
    with pytest.raises(TrainingError, match="metric 'r2' does not fit task 'binary'"):
        Trainer(mlp(), moons, {"epochs": 1, "metric": "r2"}).fit()
    frozen = mlp()
    for p in frozen.parameters():
        p.requires_grad_(False)
    with pytest.raises(TrainingError, match="every one frozen. Fix: unfreeze"):
        Trainer(frozen, moons, {"epochs": 1}).fit()
    # a network without weights was told "every node frozen?" (found by the graph fuzzer: Input → ReLU validates)
    with pytest.raises(TrainingError, match="a network without any .*Fix: add a layer that learns"):
        Trainer(torch.nn.ReLU(), moons, {"epochs": 1}).fit()


def test_seed_reproducible(moons):
    a = Trainer(mlp(dropout=0.2), moons, {"epochs": 2, "seed": 5}).fit()
    b = Trainer(mlp(dropout=0.2), moons, {"epochs": 2, "seed": 5}).fit()
    assert [e["train_loss"] for e in a.history] == [e["train_loss"] for e in b.history]


# ------------------------------------------------------------------------------------------- resume
def _curve(result):
    return [v for e in result.history for v in (e["train_loss"], e["val_loss"], e["val_metric"], e["lr"])]


@pytest.mark.parametrize("stop_step", [7, 22, 24])  # mid-epoch, and at an epoch start (12 steps per epoch)
def test_stop_and_resume_gives_the_same_curve(tmp_path, moons, stop_step):
    cfg = {"epochs": 4, "lr": 0.01, "batch_size": 25, "log_every": 3, "scheduler": "onecycle", "optimizer": "adamw",
           "early_stopping": 10}
    full = Trainer(mlp(dropout=0.3), moons, cfg, run_dir=tmp_path / "a").fit()
    first = Trainer(mlp(dropout=0.3), moons, cfg, run_dir=tmp_path / "b")
    first._stop_at_step = stop_step
    r1 = first.fit()
    assert r1.status == "stopped" and first.global_step == stop_step
    resumed = Trainer(mlp(seed=9, dropout=0.3), moons, cfg, run_dir=tmp_path / "b",
                      resume_from=tmp_path / "b" / "checkpoints" / "last.safetensors")
    r2 = resumed.fit()
    assert r2.status == "finished"
    assert _curve(r2) == pytest.approx(_curve(full), rel=1e-6, abs=1e-9)
    for a, b in zip(full_model_state(tmp_path / "a"), full_model_state(tmp_path / "b")):
        assert torch.allclose(a, b, atol=1e-6)
    assert r2.test["accuracy"] == pytest.approx(full.test["accuracy"])


def full_model_state(run_dir):
    from builder.training.weights import read_weights
    sd, _ = read_weights(run_dir / "model.safetensors")
    return [sd[k] for k in sorted(sd)]


# ------------------------------------------------------------------------------- stateful callbacks
ES = {"epochs": 40, "lr": 0.05, "batch_size": 32, "early_stopping": 2, "log_every": 3}


class LegacyCheckpoint(Trainer):
    """Writes checkpoints as before callbacks had state (early stopping and best weights as loop fields)."""

    def _save(self, epoch, batch, perm, acc):
        from builder.training.callbacks import BestWeights, EarlyStopping
        from builder.training.checkpoint import save_checkpoint

        es = next(c for c in self.callbacks if isinstance(c, EarlyStopping))
        bw = next(c for c in self.callbacks if isinstance(c, BestWeights))
        state = {"epoch": epoch, "batch": batch, "global_step": self.global_step, "acc": acc,
                 "history": self.history.to_state(), "best": es.best, "bad_epochs": es.wait,
                 "best_epoch": es.best_epoch, "config": self.config.model_dump(),
                 "epoch_times": self._epoch_times[-20:], "grad_norm": self._last_gn}
        tensors = {"gen_state": self._gen.get_state(), **({"perm": perm} if perm is not None else {}),
                   **{f"best.{k}": v for k, v in (bw.weights or {}).items()}}
        save_checkpoint(self.checkpoint_path, self.model, self.optimizer, self.scheduler, state, tensors)


@pytest.mark.parametrize("writer", [Trainer, LegacyCheckpoint], ids=["callback-state", "legacy-checkpoint"])
def test_early_stopping_and_best_weights_resume_exactly(tmp_path, moons, writer):
    """Patience used so far and the best weights come back from the checkpoint: a run stopped after a
    non-improving epoch and resumed stops at the same epoch with the same weights as the uninterrupted one."""
    from builder.training.checkpoint import read_checkpoint

    full = Trainer(mlp(), moons, ES, run_dir=tmp_path / "full")
    r = full.fit()
    assert r.message.startswith("early stopping") and r.epochs_completed < ES["epochs"]
    waited = [e for e in range(2, r.epochs_completed)
              if full.history.epochs[e - 1]["val_loss"] >= min(x["val_loss"] for x in full.history.epochs[:e - 1])]
    stop = waited[0] * full.steps_per_epoch + 2  # inside the epoch after a non-improving one
    part = writer(mlp(), moons, ES, run_dir=tmp_path / "part")
    part._stop_at_step = stop
    assert part.fit().status == "stopped"
    _, meta = read_checkpoint(tmp_path / "part" / "checkpoints" / "last.safetensors")
    if writer is Trainer:
        assert meta["state"]["callbacks"]["EarlyStopping"]["wait"] >= 1
    resumed = Trainer(mlp(seed=5), moons, ES, run_dir=tmp_path / "part",
                      resume_from=tmp_path / "part" / "checkpoints" / "last.safetensors")
    r2 = resumed.fit()
    assert (r2.status, r2.epochs_completed, r2.best_epoch, r2.message) == (r.status, r.epochs_completed,
                                                                          r.best_epoch, r.message)
    assert r2.test == r.test  # the restored best weights are the ones evaluated
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


def test_builtin_callbacks_follow_the_config():
    from builder.training.callbacks import BestWeights, ChannelsLast, EarlyStopping, Freeze, builtin_callbacks
    from builder.training.health import HealthMonitor

    kinds = [type(c) for c in builtin_callbacks(TrainConfig(freeze=["fc1"]))]
    assert kinds == [ChannelsLast, Freeze, EarlyStopping, BestWeights]
    ds = load_dataset("moons")
    trainer_kinds = [type(c) for c in Trainer(mlp(), ds, TrainConfig(device="cpu")).callbacks]
    assert trainer_kinds == [ChannelsLast, EarlyStopping, BestWeights, HealthMonitor]  # the trainer adds it
    no_health = Trainer(mlp(), ds, TrainConfig(health_every=0, device="cpu"))
    assert HealthMonitor not in [type(c) for c in no_health.callbacks]
    assert [type(c) for c in builtin_callbacks(TrainConfig(early_stopping=None, health_every=0))] == [
        ChannelsLast, EarlyStopping]
    es = EarlyStopping(3)
    es.load_state_dict({"best": 0.5, "best_epoch": 2, "wait": 1})
    assert es.state_dict() == {"best": 0.5, "best_epoch": 2, "wait": 1}
    with pytest.raises(ValueError):
        es.load_state_dict({"wait": -1})
    with pytest.raises(TypeError):
        es.load_state_dict({"best": "x"})


def test_freeze_is_a_callback_of_the_trainer(moons):
    model = mlp()
    model.layerlab_names = {"fc1": "0"}
    before = model[0].weight.detach().clone()
    t = Trainer(model, moons, {"epochs": 2, "lr": 0.05, "freeze": ["fc1"], "device": "cpu"})
    t.fit()
    assert torch.equal(t.model[0].weight, before) and not torch.equal(t.model[3].weight, mlp()[3].weight)
    with pytest.raises(TrainingError, match="cannot freeze 'nope'"):
        Trainer(mlp(), moons, {"epochs": 1, "freeze": ["nope"]}).fit()


def test_stop_at_epoch_end_from_a_callback(tmp_path, moons):
    class StopAfterFirst(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            trainer.stop()

    r = Trainer(mlp(), moons, {"epochs": 3}, [StopAfterFirst()], run_dir=tmp_path).fit()
    assert r.status == "stopped" and r.epochs_completed == 1 and r.test is None
    assert (tmp_path / "checkpoints" / "last.safetensors").is_file()


# ----------------------------------------------------------------------------------------- NaN guard
class Exploding(torch.nn.Module):
    """Returns NaN from the sixth training forward on."""

    def __init__(self):
        super().__init__()
        self.net = mlp()
        self.calls = 0

    def forward(self, x):
        out = self.net(x)
        if self.training:
            self.calls += 1
            if self.calls >= 6:
                return out * float("nan")
        return out


def test_nan_loss_stops_within_a_step_and_keeps_last_good_checkpoint(tmp_path, moons):
    events = []
    # the per-step check is the CPU's (on CUDA the loss is read at the log interval: no host sync per step)
    t = Trainer(Exploding(), moons, {"epochs": 3, "batch_size": 100, "lr": 0.5, "checkpoint_every": 1,
                                     "device": "cpu"},
                run_dir=tmp_path, on_event=events.append)  # every epoch (the default is a time interval)
    with pytest.raises(TrainingError, match="NaN/Inf.*learning rate \\(0.5\\) is probably too high"):
        t.fit()
    assert t.global_step == 5  # the NaN step was not applied
    assert t.status == "failed" and events[-1]["status"] == "failed" and "learning rate" in events[-1]["message"]
    from builder.training.checkpoint import read_checkpoint
    tensors, meta = read_checkpoint(tmp_path / "checkpoints" / "last.safetensors")
    assert meta["state"]["epoch"] == 1  # end of the first (good) epoch; 3 steps per epoch
    assert all(torch.isfinite(v).all() for k, v in tensors.items() if k.startswith("model."))
    assert not (tmp_path / "model.safetensors").exists()


def test_nan_guard_on_accelerators_reads_at_log_intervals(tmp_path, moons):
    """Off the CPU the loss is only read every log_every steps: the run still stops within that window."""

    class IntervalTrainer(Trainer):
        def _setup(self):
            super()._setup()
            self._check_each_step = False  # as on CUDA/MPS

    t = IntervalTrainer(Exploding(), moons, {"epochs": 3, "batch_size": 100, "log_every": 2, "checkpoint_every": 1},
                        run_dir=tmp_path)
    with pytest.raises(TrainingError, match="NaN/Inf"):
        t.fit()
    assert 6 <= t.global_step <= 7  # first NaN at step 6, read at the next log boundary
    from builder.training.checkpoint import read_checkpoint
    tensors, meta = read_checkpoint(tmp_path / "checkpoints" / "last.safetensors")
    assert meta["state"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for k, v in tensors.items() if k.startswith("model."))


def test_diverging_lr_is_caught():
    ds = load_dataset("diabetes")
    with pytest.raises(TrainingError, match="learning rate"):
        Trainer(mlp(10, 1), ds, {"epochs": 20, "lr": 9.0, "optimizer": "sgd", "momentum": 0.99}).fit()


# --------------------------------------------------------------------------------------------- jobs
def test_job_pause_resume_stop(tmp_path):
    ds = load_dataset("moons", n_samples=4000)
    job = TrainingJob(Trainer(mlp(hidden=64), ds, {"epochs": 400, "batch_size": 8, "early_stopping": None}, run_dir=tmp_path)).start()
    deadline = time.time() + 30
    while job.status != "running" and time.time() < deadline:
        time.sleep(0.01)
    job.pause()
    while job.status != "paused" and time.time() < deadline:
        time.sleep(0.01)
    assert job.status == "paused"
    step = job.trainer.global_step
    time.sleep(0.2)
    assert job.trainer.global_step == step
    assert (tmp_path / "checkpoints" / "last.safetensors").is_file()
    job.resume()
    while job.trainer.global_step == step and time.time() < deadline:
        time.sleep(0.01)
    job.stop()
    result = job.join(30)
    assert result.status == "stopped" and not job.running
    statuses = [e["status"] for e in job.channel.drain() if e["type"] == "status"]
    assert statuses[:3] == ["running", "paused", "running"] and statuses[-1] == "stopped"
    assert job.history["status"] == "stopped"


def test_history_downsamples_step_points():
    h = History(max_points=50)
    for i in range(10_000):
        h.add({"type": "step", "step": i, "loss": 1.0})
    assert 25 <= len(h.steps) <= 50 and h.steps[-1][1] == 1.0
    ch = Channel(max_points=20)
    for i in range(1000):
        ch.put({"type": "step", "step": i, "loss": float(i)})
    assert len(ch.drain()) == 1000 and ch.drain() == [] and len(ch.history["steps"]) <= 20


# ---------------------------------------------------------------------------------------- evaluation
def test_classification_metrics_match_sklearn():
    y = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    pred = torch.tensor([0, 1, 1, 1, 2, 0, 2])
    m = classification_metrics(pred, y, 3, ["a", "b", "c"])
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    assert m["accuracy"] == pytest.approx(5 / 7)
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    p, r, f, s = precision_recall_fscore_support(y, pred)
    for i, c in enumerate("abc"):
        assert m["per_class"][c]["precision"] == pytest.approx(p[i])
        assert m["per_class"][c]["recall"] == pytest.approx(r[i])
        assert m["per_class"][c]["f1"] == pytest.approx(f[i])
        assert m["per_class"][c]["support"] == s[i]


def test_evaluate_on_a_hand_checked_model():
    lin = torch.nn.Linear(1, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[-1.0], [1.0]]))
        lin.bias.zero_()
    X = torch.tensor([[-2.0], [-1.0], [1.0], [3.0]])
    y = torch.tensor([0, 1, 1, 1])
    res = evaluate(lin, X, y, "multiclass", class_names=["neg", "pos"])
    assert res["accuracy"] == 0.75 and res["confusion_matrix"] == [[1, 0], [1, 2]]
    reg = evaluate(torch.nn.Identity(), torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[1.0], [2.0], [3.0]]),
                   "regression")
    assert reg["r2"] == pytest.approx(1.0) and reg["mse"] == 0


def test_tiny_custom_dataset_bundle():
    X = torch.randn(40, 3)
    y = (X[:, 0] > 0).long()
    info = DatasetInfo(name="tiny", task="multiclass", modality="tabular", input_shape=(3,), num_classes=2,
                       out_size=2, class_names=["n", "p"])
    ds = Dataset(info, Split(X[:30], y[:30]), Split(X[30:35], y[30:35]), Split(X[35:], y[35:]))
    r = Trainer(mlp(3, 2), ds, {"epochs": 2, "batch_size": 7}).fit()
    assert r.status == "finished" and r.test["n"] == 5


# ------------------------------------------------------------------------------- templates learn
def _template_fit(template, dataset, epochs, **opts):
    from builder.graph.templates import load_template
    from builder.runs.pipeline import build_model, prepare

    project, ds, cfg = prepare(load_template(template), dataset, {"epochs": epochs}, dataset_options=opts)
    return Trainer(build_model(project.graph, cfg.seed), ds, cfg).fit()


@pytest.mark.slow
def test_digits_cnn_reaches_95_percent():
    r = _template_fit("cnn", "digits", 30)  # the template's own settings
    assert r.test["accuracy"] >= 0.95, r.test["accuracy"]


@pytest.mark.slow
def test_moons_mlp_reaches_95_percent():
    r = _template_fit("mlp", "moons", 60)
    assert r.test["accuracy"] >= 0.95, r.test["accuracy"]


@pytest.mark.slow
@pytest.mark.parametrize("template,epochs", [("lstm", 4), ("transformer", 3)])
def test_sequence_templates_beat_chance(template, epochs):
    r = _template_fit(template, "sequence", epochs, n_samples=2000)
    assert r.test["accuracy"] >= 0.8, r.test["accuracy"]  # chance is 0.5


@pytest.mark.slow
def test_autoencoder_template_loss_falls():
    r = _template_fit("autoencoder", "digits", 10)
    losses = [e["val_loss"] for e in r.history]
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.parametrize("clip", [None, 0.5])
def test_float32_loop_matches_a_hand_written_pytorch_loop(moons, clip):
    """The one step path (autocast and scaler as no-ops in float32) gives the weights, bit for bit, of the
    plain PyTorch loop: the seed's permutation per epoch, slices of it as batches, zero_grad, backward, clip,
    step."""
    import copy

    from builder.training.trainer import build_optimizer

    cfg = TrainConfig.from_dict({"epochs": 2, "batch_size": 48, "optimizer": "sgd", "lr": 0.05, "seed": 7,
                                 "grad_clip": clip, "early_stopping": None, "device": "cpu"})
    model = mlp(seed=3)
    ref = copy.deepcopy(model)
    assert Trainer(model, moons, cfg).fit().status == "finished"
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = build_optimizer(ref.parameters(), cfg)
    X, y = moons.train.X, moons.train.y
    n = len(X)
    steps = n // cfg.batch_size + (1 if n % cfg.batch_size >= 2 else 0)
    ref.train()
    for _ in range(cfg.epochs):
        perm = torch.randperm(n, generator=gen)
        for b in range(steps):
            idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            loss = torch.nn.functional.cross_entropy(ref(X[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(ref.parameters(), clip)
            opt.step()
    for (name, a), b in zip(model.state_dict().items(), ref.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mixed_precision_path_runs(moons, monkeypatch, dtype):
    """The autocast (and GradScaler for float16) branch, exercised on the CPU by forcing the dtype."""
    import builder.training.trainer as T

    monkeypatch.setattr(T, "amp_dtype", lambda device: dtype)
    t = Trainer(mlp(), moons, {"epochs": 2, "amp": True, "lr": 0.01, "grad_clip": 1.0})
    r = t.fit()
    assert t._precision.dtype == dtype and t._precision.scaler.is_enabled() == (dtype == torch.float16)
    assert r.status == "finished" and all(math.isfinite(e["train_loss"]) for e in r.history)
    assert all(e["grad_norm"] is not None and math.isfinite(e["grad_norm"]) for e in r.history)


def test_empty_validation_and_test_splits_and_torch_errors_are_reported():
    X = torch.randn(20, 3)
    y = (X[:, 0] > 0).long()
    info = DatasetInfo(name="tiny", task="multiclass", modality="tabular", input_shape=(3,), num_classes=2,
                       out_size=2, class_names=["n", "p"])
    empty = Split(X[:0], y[:0])
    r = Trainer(mlp(3, 2), Dataset(info, Split(X, y), empty, empty), {"epochs": 2}).fit()
    assert r.status == "finished" and r.test is None

    class Broken(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 2)

        def forward(self, x):
            if self.training:
                raise ValueError("boom")
            return self.lin(x)

    events = []
    with pytest.raises(TrainingError, match="training failed: ValueError: boom"):
        Trainer(Broken(), Dataset(info, Split(X, y), empty, empty), {"epochs": 1}, on_event=events.append).fit()
    assert events[-1]["status"] == "failed"


# ------------------------------------------------------------------------------- AMP honesty (issue 9)
def test_amp_on_cpu_runs_bfloat16_or_is_refused(moons, monkeypatch):
    """--amp never silently trains float32: bf16 autocast where the CPU has native bf16, else a TrainingError."""
    import builder.training.config as T

    cfg = {"epochs": 1, "amp": True, "device": "cpu"}
    monkeypatch.setattr(T, "_cpu_has_native_bf16", lambda: True)
    t = Trainer(mlp(), moons, cfg)
    assert t.precision == "bfloat16 autocast"
    seen = []
    t.model.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    assert t.fit().status == "finished"
    assert torch.bfloat16 in seen  # the forward really ran under bf16 autocast
    monkeypatch.setattr(T, "_cpu_has_native_bf16", lambda: False)
    with pytest.raises(TrainingError, match="mixed precision.*not available.*without --amp"):
        Trainer(mlp(), moons, cfg)
    assert Trainer(mlp(), moons, {"epochs": 1, "device": "cpu"}).precision == "float32"


def test_run_record_and_model_card_state_what_ran(tmp_path, monkeypatch):
    import builder.training.config as T
    from builder.graph.templates import load_template
    from builder.runs.modelcard import model_card
    from builder.runs.pipeline import run_training
    from builder.runs.store import RunStore

    monkeypatch.setattr(T, "_cpu_has_native_bf16", lambda: True)
    store = RunStore(tmp_path, actor=SYSTEM)
    r = run_training(load_template("mlp"), "moons", {"epochs": 1, "amp": True, "device": "cpu"}, store,
                     dataset_options={"n_samples": 100})
    run = store.get(r.run_id)
    assert run["environment"]["precision"] == "bfloat16 autocast"
    assert "precision bfloat16 autocast" in model_card(run, store.metrics(r.run_id))
    r = run_training(load_template("mlp"), "moons", {"epochs": 1, "device": "cpu"}, store,
                     dataset_options={"n_samples": 100})
    run = store.get(r.run_id)
    card = model_card(run, store.metrics(r.run_id))
    assert "precision float32" in card and "mixed precision on" not in card


def test_form_values_leave_out_what_a_form_cannot_show():
    """TrainConfig.form_values: a project's setting its field refuses, or outside the form's range, is the task's
    default and is named; valid ones are kept (validated: "5" epochs read as 5)."""
    from builder.training.config import TrainConfig

    values, left = TrainConfig.form_values("binary", 800, {"epochs": None, "lr": "x", "batch_size": 16, "seed": 7,
                                                           "weight_decay": 10**400, "optimizer": "sgd"},
                                           {"seed": (0, 5)})
    defaults = TrainConfig.defaults("binary", 800)
    assert (values["epochs"], values["lr"], values["seed"]) == (defaults["epochs"], defaults["lr"], defaults["seed"])
    assert (values["batch_size"], values["optimizer"]) == (16, "sgd")
    assert [k.split(" ")[0] for k in left] == ["epochs", "lr", "seed", "weight_decay"]
    assert TrainConfig.form_values(None, None, {"epochs": "5", "early_stopping": 0})[0]["epochs"] == 5
