"""The trainer: a step loop over device-resident tensors, callbacks and events out, checkpoints and resume.

The trainer knows nothing of graphs or the UI: it takes an ``nn.Module`` whose forward takes one input
tensor, a :class:`~builder.data.Dataset` and a :class:`TrainConfig`, and reports through callbacks and
plain-dict events. Small datasets live on the device; each epoch draws a seeded ``randperm`` and batches
are slices of it, so there is no per-sample DataLoader work. Losses stay on the device and are read every
``log_every`` steps. The NaN/Inf guard reads each step's loss on the CPU (no device to wait for there; the
bad step is never applied) and every ``log_every`` steps on accelerators, so a GPU run never synchronises
per step; either way the last good checkpoint is kept. Features with state (early stopping, best weights,
memory format, freezing) are callbacks (:mod:`builder.training.callbacks`) whose state goes into the
checkpoint; settings are :mod:`builder.training.config`, metrics :mod:`builder.training.metrics`. Example::

    >>> from builder.data import load_dataset
    >>> ds = load_dataset("moons", n_samples=200)
    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    >>> result = Trainer(model, ds, TrainConfig(epochs=2)).fit()
    >>> result.status
    'finished'
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from builder.data.augment import Augment, check_augment_input
from builder.data.predictions import first_output, forward_all, mean_token_loss
from builder.data.splits import Dataset, PixelSplit, Split
from builder.errors import DatasetError, TrainingError
from builder.training.callbacks import (
    Callback,
    EarlyStopping,
    EpochWeights,
    builtin_callbacks,
    int_in,
    number,
)
from builder.training.checkpoint import load_checkpoint, save_checkpoint
from builder.training.config import (
    SCHEDULER_PARAMS,
    TrainConfig,
    amp_dtype,
    precision_label,
    resolve_device,
    steps_per_epoch,
)
from builder.training.control import RunControl, StopRequested, call_hook
from builder.training.events import Channel, History
from builder.training.health import HealthMonitor
from builder.training.metrics import (
    TRAIN_METRIC_SAMPLES,
    classification_metrics,
    compute_loss,
    evaluate,
    loss_kind,
    make_loss,
    metric_name,
    quick_metric,
    regression_metrics,
)
from builder.training.nonfinite import Cause, diagnose, failing_node, nonfinite_message
from builder.training.peak import peak_bytes, reset_peak
from builder.training.run_folder import RunFolder
from builder.training.threads import torch_threads
from builder.training.weights import save_weights

_CB_PREFIX = "callbacks."  # checkpoint tensors of callback states: callbacks.<state_key>.<name>


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns."""

    status: str
    epochs_completed: int
    history: list[dict]
    test: dict | None = None
    best_epoch: int | None = None
    message: str = ""
    wall_s: float = 0.0
    final: dict = field(default_factory=dict)
    run_id: str | None = None

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return {"run_id": self.run_id, "status": self.status, "epochs_completed": self.epochs_completed,
                "test": self.test,
                "best_epoch": self.best_epoch, "message": self.message, "wall_s": self.wall_s,
                "final": self.final}


def end_run(run: RunControl, status: str, message: str, t0: float, test: dict | None) -> TrainResult:
    """The end of a run for either trainer (``run``: a :class:`Trainer` or an ``ObjectiveTrainer``, its test figures
    ``test`` already measured): a finished run's weights saved in its folder, its result built from its history,
    the ``done`` event with the test figures, its status, then the ``on_train_end`` hook."""
    if status == "finished" and run.run_dir is not None:
        run.run_dir.mkdir(parents=True, exist_ok=True)
        save_weights(run.model, RunFolder(run.run_dir).weights)
    epochs = list(run.history.epochs)
    final = {k: v for k, v in (epochs[-1] if epochs else {}).items() if k != "type"}
    run.result = TrainResult(status=status, epochs_completed=len(epochs), history=epochs, test=test,
                             best_epoch=run.best_epoch, message=message, wall_s=time.perf_counter() - t0,
                             final=final)
    if test is not None:
        run._emit({"type": "done", "test": test, "status": status})
    run._set_status(status, message)
    call_hook(run.callbacks, "on_train_end", run, run.result)
    return run.result


# --------------------------------------------------------------------------------------- optimisation
class _Precision:
    """The step's precision as one path (Lightning's precision plugins): an autocast context, the loss read in
    float32 and a gradient scaler, each a no-op in float32; the scaler works under float16 autocast only.

    Example::

        >>> p = _Precision("cpu", None)
        >>> p.scaler.is_enabled(), p.loss(torch.ones(1)).dtype
        (False, torch.float32)
    """

    def __init__(self, device_type: str, dtype: torch.dtype | None) -> None:
        self.device_type, self.dtype = device_type, dtype
        self.scaler = torch.amp.GradScaler(device_type, enabled=dtype == torch.float16)

    def autocast(self) -> AbstractContextManager:
        """The forward's context: autocast to the mixed-precision dtype, nothing in float32."""
        return nullcontext() if self.dtype is None else torch.autocast(self.device_type, dtype=self.dtype)

    def loss(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss as it is summed and differentiated: float32 under autocast, untouched in float32."""
        return loss if self.dtype is None else loss.float()


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer named in ``cfg``; SGD, Adam and AdamW use torch's fused kernels where available."""
    params = list(params)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        cls, kw = torch.optim.SGD, {"momentum": cfg.momentum, "nesterov": cfg.nesterov}
    else:
        cls, kw = (torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW), {}
    try:  # one fused kernel per step instead of a loop over parameters (about 20% faster for small models)
        return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True, **kw)
    except (RuntimeError, TypeError, ValueError):
        return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **kw)


def build_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> tuple[Any, str]:
    """``(scheduler or None, when)`` where ``when`` is ``step``, ``epoch`` or ``plateau``."""
    p = {**SCHEDULER_PARAMS[cfg.scheduler], **cfg.scheduler_params}
    s = torch.optim.lr_scheduler
    if cfg.scheduler == "step":
        return s.StepLR(opt, step_size=int(p["step_size"] or max(1, cfg.epochs // 3)), gamma=p["gamma"]), "epoch"
    if cfg.scheduler == "cosine":
        return s.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=p["eta_min"]), "epoch"
    if cfg.scheduler == "onecycle":
        cycle = cfg.optimizer in ("adam", "adamw") or (cfg.optimizer == "sgd" and cfg.momentum > 0)
        return s.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch,
                            pct_start=p["pct_start"], div_factor=p["div_factor"],
                            final_div_factor=p["final_div_factor"], cycle_momentum=cycle), "step"
    if cfg.scheduler == "plateau":
        return s.ReduceLROnPlateau(opt, mode="min", factor=p["factor"], patience=int(p["patience"]),
                                   min_lr=p["min_lr"]), "plateau"
    return None, "none"


def grad_norm(params: Iterable[torch.nn.Parameter]) -> torch.Tensor:
    """Total L2 norm of the gradients (a device tensor, no host read)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


def _flop_counter() -> Any:
    """torch's FLOP counter (matrix products and convolutions: the multiply-adds of builder.graph.cost × 2)."""
    from torch.utils.flop_counter import FlopCounterMode  # lazy: heavy (torch)

    return FlopCounterMode(display=False)


# ------------------------------------------------------------------------------------------- trainer
class Trainer(RunControl):
    """Trains ``model`` on ``dataset`` with ``config``; see the module docstring.

    Args:
        model: an ``nn.Module`` taking one input batch and returning one tensor (or a tuple; the first
            element is used).
        dataset: a :class:`~builder.data.Dataset`; it is moved to the device whole.
        config: a :class:`TrainConfig` or a dict of its fields.
        callbacks: :class:`Callback` instances; the config's own (:func:`~builder.training.callbacks.builtin_callbacks`:
            channels_last, freezing, early stopping, best weights) run first.
        run_dir: folder for ``checkpoints/last.safetensors`` and ``model.safetensors``; nothing is
            written without it.
        on_event: listeners called with every event dict (a :class:`Channel`, a run-store logger).
        resume_from: a checkpoint to continue from.
        dist: a :class:`builder.training.distributed.DistContext` for DistributedDataParallel (optional).
    """

    def __init__(self, model: torch.nn.Module, dataset: Dataset, config: TrainConfig | dict | None = None,
                 callbacks: Iterable[Callback] = (), run_dir: str | Path | None = None, *,
                 on_event: Callable[[dict], None] | Iterable[Callable[[dict], None]] | None = None,
                 resume_from: str | Path | None = None, dist: Any = None):
        self.config = TrainConfig.from_dict(config)
        self.device = resolve_device(self.config.device)
        if dist is not None and getattr(dist, "device", None) is not None:
            self.device = dist.device
        self.dist = dist
        self.model = model.to(self.device)
        self.dataset = dataset.to(self.device)
        self.task = dataset.info.task
        health = [HealthMonitor(self.config.health_every)] if self.config.health_every else []
        newest = [EpochWeights()] if run_dir else []  # the newest epoch's weights for Try it while it trains
        self.callbacks: list[Any] = [*builtin_callbacks(self.config), *health, *newest, *callbacks]
        self.run_dir = Path(run_dir) if run_dir else None
        if on_event is None:
            self.listeners: list[Callable[[dict], None]] = []
        elif callable(on_event):
            self.listeners = [on_event]
        else:
            self.listeners = list(on_event)
        self.resume_from = Path(resume_from) if resume_from else None
        self.history = History(self.config.max_step_points)
        self.status = "queued"
        self.epoch = 0
        self.global_step = 0
        self.result: TrainResult | None = None
        self.metric_name = metric_name(self.task, self.config.metric)
        self._init_control()
        self._resume_note = ""
        amp = self.config.amp if self.config.amp is not None else self.device.type == "cuda"  # on by default on CUDA
        self._amp_dtype = amp_dtype(self.device) if amp else None
        if self.config.amp and self._amp_dtype is None:
            raise TrainingError(f"mixed precision (amp) is not available on device {self.device.type!r}"
                                + (" (this processor has no native bfloat16)" if self.device.type == "cpu" else "")
                                + "; received: amp=True. Fix: train without --amp (float32), or on a GPU")
        self.precision = precision_label(self._amp_dtype)  # what actually runs, recorded with the run

    @property
    def prediction_model(self) -> torch.nn.Module:
        """The model as callbacks call it on samples (the decision boundary, live attributions): the model
        itself (an objective trainer's is a wrapper that feeds its graph's other inputs)."""
        return self.model

    # ---- control: pause/resume/stop/stop_after_epoch/checkpoint_path from RunControl
    @property
    def best_epoch(self) -> int | None:
        """The epoch (1-based) with the best validation loss so far, or None."""
        return next((cb.best_epoch for cb in self.callbacks if isinstance(cb, EarlyStopping)), None)

    # ---- setup
    def _setup(self) -> None:
        call_hook(self.callbacks, "setup", self)  # memory format, freezing: before the optimizer sees the model
        cfg, ds = self.config, self.dataset
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        self._gen = torch.Generator().manual_seed(cfg.seed)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        if not self.params:
            total = sum(p.numel() for p in self.model.parameters())
            raise TrainingError(
                "training needs learned parameters; received: a network without any (only layers without weights, "
                "e.g. Input → ReLU). Fix: add a layer that learns, such as Linear or Conv2d" if total == 0 else
                f"training needs parameters that are not frozen; received: {total:,} parameters, every one frozen. "
                "Fix: unfreeze at least one node (Train › fine-tuning)")
        n = len(ds.train)
        if n == 0:
            raise TrainingError("the training split is empty")
        self.world = getattr(self.dist, "world_size", 1) or 1
        self.rank = getattr(self.dist, "rank", 0) or 0
        self.batch_size = min(cfg.batch_size, n)
        self.steps_per_epoch = steps_per_epoch(n, self.batch_size, self.world)  # a last batch of 1 dropped
        self.optimizer = build_optimizer(self.params, cfg)
        self.scheduler, self._sched_when = build_scheduler(self.optimizer, cfg, self.steps_per_epoch)
        self._fwd: torch.nn.Module = self.model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP  # lazy: heavy (torch)
            ids = [self.device.index or 0] if self.device.type == "cuda" else None
            self._fwd = DDP(self.model, device_ids=ids)
        self.compiled = bool(cfg.torch_compile)  # the training forward only (evaluation stays eager)
        if self.compiled:
            self._fwd = torch.compile(self._fwd)
        self._precision = _Precision(self.device.type, self._amp_dtype)
        # probe the output once: catches shape mismatches early with a clear message
        try:
            probe = ds.train.head(2).X
            with _flop_counter() as flops:
                out = first_output(forward_all(self.model, probe))
        except TrainingError:
            raise
        except Exception as e:  # a model/data mismatch surfaces here as a torch error, located on its node
            where = None
            with suppress(Exception):  # the diagnosis never hides the failure it explains
                where = failing_node(self.model, probe.to(self.device))
            at = f"node `{where}` failed: " if where else ""
            fix = (f" Fix: change `{where}`'s settings (its kernel refused them; the shape check could not see "
                   "this) or remove it" if where else "")
            raise TrainingError(f"the model cannot process dataset {ds.info.shown_name!r} samples of shape "
                                f"{list(ds.info.input_shape)}: {at}{str(e).splitlines()[0][:300]}.{fix}") from None
        width = out.shape[-1] if out.dim() > 1 else 1
        self._kind = loss_kind(self.task, width)
        self._num_classes = ds.info.num_classes or width
        if self._kind == "ce" and width != (ds.info.num_classes or width):
            raise TrainingError(f"the model outputs {width} values but dataset {ds.info.shown_name!r} has "
                                f"{ds.info.num_classes} classes; set the last layer's out_features to "
                                f"{ds.info.num_classes}")
        if self._kind == "tok" and (out.dim() != 3 or width != ds.info.out_size):
            raise TrainingError(f"next-token prediction needs (batch, tokens, {ds.info.out_size}) logits, one per "
                                f"vocabulary entry at every position; received: {list(out.shape)}. Fix: a sequence "
                                f"output (LSTM output_mode 'all', or a Transformer) and a last Linear of "
                                f"out_features {ds.info.out_size}")
        if self._kind == "reg":
            want = ds.info.out_size
            if out[0].numel() != want:
                raise TrainingError(f"the model outputs {out[0].numel()} values per sample but the "
                                    f"{self.task} target has {want}; set the last layer's out_features to {want}")
        classification = self.task in ("multiclass", "binary")
        if (self.metric_name in ("accuracy", "f1")) != classification:
            raise TrainingError(f"metric {self.metric_name!r} does not fit task {self.task!r}; use "
                                f"{'accuracy or f1' if classification else 'r2'} (or auto)")
        self._ytrain = self._prep_y(ds.train)
        self._check_each_step = self.device.type == "cpu"
        self.macs_per_batch = flops.get_total_flops() // 2 * self.batch_size // max(len(probe), 1)
        self._set_threads()
        self._augment = None  # image augmentation per batch (builder.data.augment), drawn from (seed, epoch, batch)
        if cfg.augment:
            try:
                check_augment_input(cfg.augment, tuple(ds.info.input_shape), ds.info.modality)
            except DatasetError as e:
                raise TrainingError(str(e)) from None
            self._augment = Augment(cfg.augment, cfg.seed, clamp=isinstance(ds.train, PixelSplit))

    def _prep_y(self, s: Split) -> torch.Tensor | None:
        if self.task == "reconstruction":
            return None
        if self._kind == "bce":
            return s.y.reshape(-1).float()
        return s.y

    def _make_loss(self) -> Callable:
        return make_loss(self._kind, self.task, self.config.loss)

    def _set_threads(self) -> None:
        """Intra-op threads on a CPU from the model's multiply-adds per batch (:func:`builder.training.threads.torch_threads`;
        the threads this process has are the cap). The process keeps the count after :meth:`fit`: raising it again
        makes the next calls on more threads 4-25x slower for a while on torch 2.13 (OpenMP/oneDNN; bench/RESULTS.md
        "CPU runs"). Torchrun sets its own."""
        self.threads = torch.get_num_threads()
        if self.device.type == "cpu" and self.world == 1:
            self.threads = torch_threads(self.macs_per_batch, cap=self.threads)
            if self.threads != torch.get_num_threads():
                torch.set_num_threads(self.threads)

    # ---- checkpoint
    def _save(self, epoch: int, batch: int, perm: torch.Tensor | None, acc: dict) -> None:
        if self.checkpoint_path is None:
            return
        state = {"epoch": epoch, "batch": batch, "global_step": self.global_step, "acc": acc,
                 "history": self.history.to_state(), "config": self.config.model_dump(),
                 "epoch_times": self._epoch_times[-20:], "grad_norm": self._last_gn, "callbacks": {}}
        tensors = {"gen_state": self._gen.get_state()}
        if perm is not None:
            tensors["perm"] = perm
        for cb in self.callbacks:  # each stateful callback under its own key; its tensors as checkpoint tensors
            cb_state = dict(cb.state_dict()) if callable(getattr(cb, "state_dict", None)) else {}
            cb_tensors = cb_state.pop("tensors", None) or {}
            if cb_state or cb_tensors:
                state["callbacks"][cb.state_key] = cb_state
                tensors.update({f"{_CB_PREFIX}{cb.state_key}.{k}": v for k, v in cb_tensors.items()})
        if self._precision.scaler.is_enabled():
            state["scaler"] = self._precision.scaler.state_dict()
        save_checkpoint(self.checkpoint_path, self.model, self.optimizer, self.scheduler, state, tensors)
        self._ckpt_t, self._ckpt_due = time.perf_counter(), False

    def _save_quietly(self, epoch: int, b: int, perm: torch.Tensor, sum_loss: float, count: int, cbase: float,
                      cbase_n: int, chunk: list[torch.Tensor], rng: tuple | None) -> None:
        """The checkpoint at a torch error (before batch ``b``, with the random state the step started from, so
        that its dropout draws repeat on resume); a failure to write it hides nothing."""
        try:
            if rng is not None:
                torch.set_rng_state(rng[0])
                if rng[1] is not None:
                    torch.cuda.set_rng_state(rng[1], self.device)
            csum = cbase + (float(torch.stack(chunk).double().sum()) if chunk else 0.0)
            self._save(epoch, b, perm, {"sum": sum_loss, "count": count, "chunk_sum": csum,
                                        "chunk_n": cbase_n + len(chunk)})
        except Exception:  # noqa: BLE001 - the training error is the one to report
            pass

    def _checkpoint_due(self) -> bool:
        """Whether the time-interval checkpoint is due (``checkpoint_every`` unset)."""
        cfg = self.config
        return (cfg.checkpoint_every is None and self.checkpoint_path is not None
                and time.perf_counter() - self._ckpt_t >= cfg.checkpoint_interval_s)

    def _restore(self) -> tuple[int, int, torch.Tensor | None, dict]:
        state, extra = load_checkpoint(self.resume_from, self.model, self.optimizer, self.scheduler)
        try:
            return self._restore_state(state, extra)
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError, OverflowError, AttributeError) as e:
            what = f"missing {e}" if isinstance(e, KeyError) else str(e).splitlines()[0][:200] if str(e) else ""
            raise TrainingError(f"checkpoint {self.resume_from} has a malformed loop state ({type(e).__name__}: "
                                f"{what}); it cannot be resumed. Fix: start a new run") from None

    def _restore_state(self, state: dict, extra: dict[str, torch.Tensor]) -> tuple[int, int, torch.Tensor | None, dict]:
        """Apply a checkpoint's loop state after checking every type and range (crafted files are refused)."""
        self._resume_note = state.pop("_fallback", "")
        cfg_saved = state.get("config", {})
        if not isinstance(cfg_saved, dict):
            raise TypeError("config must be a dict")
        saved_lr = cfg_saved.get("lr")
        if saved_lr is not None and saved_lr != self.config.lr:  # lr changed on resume (e.g. after NaN)
            for g in self.optimizer.param_groups:
                g["lr"] = self.config.lr
                if "initial_lr" in g:
                    g["initial_lr"] = self.config.lr
        epoch = int_in(state["epoch"], "epoch", 0, 100_000)
        batch = int_in(state.get("batch", 0), "batch", 0, self.steps_per_epoch - 1)
        self.global_step = int_in(state.get("global_step", 0), "global_step", 0, 10**12)
        gen = extra["gen_state"]
        if gen.dtype != torch.uint8 or gen.shape != self._gen.get_state().shape:
            raise ValueError(f"gen_state must be uint8 {list(self._gen.get_state().shape)}; received: "
                             f"{gen.dtype} {list(gen.shape)}")
        self._gen.set_state(gen)
        hist = state.get("history", {})
        if not isinstance(hist, dict):
            raise TypeError("history must be a dict")
        self.history.load_state(hist)
        self._epoch_times = [number(t, "epoch_times") for t in list(state.get("epoch_times", []))[-20:]]
        gn = state.get("grad_norm")
        self._last_gn = None if gn is None else number(gn, "grad_norm")
        self._restore_callbacks(state, extra)
        if "scaler" in state:  # a float16 run's loss scale (ignored by the disabled scaler of the others)
            self._precision.scaler.load_state_dict(state["scaler"])
        perm = extra.get("perm")
        n = len(self.dataset.train)
        if perm is not None and (perm.dtype != torch.int64 or perm.shape != (n,)
                                 or not torch.equal(perm.sort().values, torch.arange(n))):
            raise ValueError(f"perm must be a permutation of the {n} training samples")
        if perm is None and batch:
            raise ValueError("a checkpoint inside an epoch needs its permutation")
        acc = state.get("acc", {})
        if not isinstance(acc, dict):
            raise TypeError("acc must be a dict")
        acc = {k: number(acc[k], k) for k in ("sum", "chunk_sum") if k in acc} | \
              {k: int_in(acc[k], k, 0, 10**12) for k in ("count", "chunk_n") if k in acc}
        return epoch, batch, perm, acc

    def _restore_callbacks(self, state: dict, extra: dict[str, torch.Tensor]) -> None:
        """Give each stateful callback its state back (checkpoints before callbacks had state: their keys)."""
        saved = state.get("callbacks")
        if saved is None:  # an older checkpoint: early stopping and best weights were loop fields
            best = {k[5:]: v for k, v in extra.items() if k.startswith("best.")}
            common = {"best": state.get("best", math.inf), "best_epoch": state.get("best_epoch")}
            saved = {"EarlyStopping": {**common, "wait": state.get("bad_epochs", 0)}, "BestWeights": common}
            extra = {**extra, **{f"{_CB_PREFIX}BestWeights.{k}": v for k, v in best.items()}}
        if not isinstance(saved, dict):
            raise TypeError("callbacks must be a dict")
        for cb in self.callbacks:
            key = getattr(cb, "state_key", None)
            if key not in saved or not callable(getattr(cb, "load_state_dict", None)):
                continue  # a callback added on resume starts fresh
            if not isinstance(saved[key], dict):
                raise TypeError(f"callback state {key} must be a dict")
            prefix = f"{_CB_PREFIX}{key}."
            cb.load_state_dict({**saved[key], "tensors": {k[len(prefix):]: v for k, v in extra.items()
                                                          if k.startswith(prefix)}})

    # ---- main loop (RunControl.fit drives it)
    def _before_fit(self) -> None:
        self._stop_message = None
        self._epoch_times: list[float] = []
        self._last_gn: float | None = None
        self._ckpt_t, self._ckpt_due = time.perf_counter(), False

    def _after_setup(self) -> None:
        reset_peak(self.device)  # each epoch event carries the peak so far (builder.training.peak)

    def _resumed_message(self) -> str:
        return "resumed" + (f" ({self._resume_note})" if self._resume_note else "")

    def _finish(self, status: str, message: str, t0: float) -> TrainResult:
        test = None
        if status == "finished":
            call_hook(self.callbacks, "on_before_test", self)  # best weights
            info = self.dataset.info
            test = None if len(self.dataset.test) == 0 else evaluate(self.model, self.dataset.test.X, self.dataset.test.y, self.task,
                            class_names=info.class_names or None, num_classes=info.num_classes,
                            loss=self.config.loss)
        return end_run(self, status, message, t0, test)

    def _interval_checkpoint_due(self) -> bool:
        return self._ckpt_due  # the time-interval checkpoint, inside a long epoch

    def _loop(self, start_epoch: int, start_batch: int, perm: torch.Tensor | None, acc: dict):
        cfg, ds = self.config, self.dataset
        take, Y, aug = ds.train.batch, self._ytrain, self._augment  # uint8 image rows become float per batch
        n, B, nb = len(ds.train), self.batch_size, self.steps_per_epoch
        fwd, opt, sched = self._fwd, self.optimizer, self.scheduler
        lossf = self._make_loss()
        per_step_sched = self._sched_when == "step"
        clip, log_every = cfg.grad_clip, cfg.log_every
        world, rank = self.world, self.rank
        params, precision, scaler = self.params, self._precision, self._precision.scaler
        for epoch in range(start_epoch, cfg.epochs):
            self.epoch = epoch
            if perm is None:  # a checkpoint taken inside an epoch brings that epoch's permutation
                perm = torch.randperm(n, generator=self._gen)
            perm_dev = perm.pin_memory().to(self.device, non_blocking=True) if self.device.type == "cuda" \
                else perm.to(self.device)  # no host synchronisation on CUDA
            sum_loss, count = float(acc.get("sum", 0.0)), int(acc.get("count", 0))
            chunk: list[torch.Tensor] = []
            # a chunk interrupted by a checkpoint continues from its saved partial sum
            cbase, cbase_n = float(acc.get("chunk_sum", 0.0)), int(acc.get("chunk_n", 0))
            te = time.perf_counter()
            seen = 0
            self._fwd.train()
            phase, b, rng = 0, start_batch, None  # 0: before the step, 1: global_step counted, 2: weights (being) updated
            cuda = self.device.type == "cuda"
            try:
                for b in range(start_batch, nb):
                    phase = 0
                    rng = (torch.get_rng_state(), torch.cuda.get_rng_state(self.device) if cuda else None)  # ~1 µs
                    if self._flag or self.global_step == self._stop_at_step:
                        if self.global_step == self._stop_at_step:
                            self._stop_req = True
                        csum = cbase + (float(torch.stack(chunk).double().sum()) if chunk else 0.0)
                        self._handle_flag(epoch, b, perm, {"sum": sum_loss, "count": count,
                                                            "chunk_sum": csum, "chunk_n": cbase_n + len(chunk)})
                    idx = perm_dev[b * B:(b + 1) * B]
                    if world > 1:
                        idx = idx[rank::world]
                    xb = take(idx, None if aug is None else aug.at(epoch, b))
                    yb = xb if Y is None else Y[idx]
                    with precision.autocast():
                        out = fwd(xb)
                        loss = lossf(out if isinstance(out, torch.Tensor) else first_output(out), xb, yb)
                    loss = precision.loss(loss)
                    if self._check_each_step and not math.isfinite(loss.item()):
                        self._nonfinite(epoch, b, diagnose(self.model, xb))  # checked each step: exact
                    opt.zero_grad(set_to_none=True)
                    self.global_step += 1
                    phase = 1
                    scaler.scale(loss).backward()
                    if clip or b == nb - 1:  # the norm of the unscaled gradients, reported once per epoch
                        scaler.unscale_(opt)
                        self._last_gn_t = torch.nn.utils.clip_grad_norm_(params, clip) if clip else grad_norm(params)
                    phase = 2
                    scaler.step(opt)  # opt.step() unless float16 gradients overflowed
                    scaler.update()
                    if per_step_sched:
                        sched.step()
                    seen += len(idx)
                    chunk.append(loss.detach())
                    if len(chunk) + cbase_n >= log_every:
                        sum_loss, count = self._flush(chunk, cbase, cbase_n, sum_loss, count, epoch, b)
                        chunk, cbase, cbase_n = [], 0.0, 0
            except (TrainingError, StopRequested):
                raise
            except Exception:  # a torch error before the update (forward, backward): keep this exact position
                if phase < 2:
                    self.global_step -= phase
                    self._save_quietly(epoch, b, perm, sum_loss, count, cbase, cbase_n, chunk, rng)
                raise
            if chunk or cbase_n:
                sum_loss, count = self._flush(chunk, cbase, cbase_n, sum_loss, count, epoch, nb - 1)
            self._epoch_times.append((time.perf_counter() - te) * nb / max(nb - start_batch, 1))
            start_batch, acc, perm = 0, {}, None
            train_loss = sum_loss / max(count, 1)
            if world > 1:
                t = torch.tensor([train_loss], device=self.device, dtype=torch.float64)
                torch.distributed.all_reduce(t)
                train_loss = float(t) / world
            self._end_epoch(epoch, train_loss, seen * world, time.perf_counter() - te)
            stop_early = self._stop_message is not None  # a callback ended the run (early stopping)
            every = cfg.checkpoint_every
            if (every != 0 and (epoch + 1 == cfg.epochs or stop_early)) or (every and (epoch + 1) % every == 0) \
                    or self._ckpt_due or self._checkpoint_due():
                self._save(epoch + 1, 0, None, {})
            if stop_early:
                return "finished", self._stop_message
        return "finished", ""

    def _flush(self, chunk: list[torch.Tensor], cbase: float, cbase_n: int, sum_loss: float, count: int,
               epoch: int, b: int) -> tuple[float, int]:
        """Read the accumulated step losses (the only host read in the loop) and emit a step event."""
        s = cbase + (float(torch.stack(chunk).double().sum()) if chunk else 0.0)
        k = cbase_n + len(chunk)
        if not math.isfinite(s):
            self._nonfinite(epoch, b)
        if self._checkpoint_due():  # saved at the next step (or the epoch's end)
            self._ckpt_due = self._flag = True
        self._emit({"type": "step", "step": self.global_step, "epoch": epoch, "loss": s / max(k, 1)})
        return sum_loss + s, count + k

    def _nonfinite(self, epoch: int, batch: int, cause: Cause | None = None) -> None:
        cfg = self.config
        raise TrainingError(nonfinite_message(cfg.lr, epoch, self.global_step, cause, grad_clip=cfg.grad_clip,
                                              task=self.task))

    def _end_epoch(self, epoch: int, train_loss: float, seen: int, dt: float) -> None:
        cfg, ds = self.config, self.dataset
        t_eval = time.perf_counter()
        val_loss, val_metric = self._eval_quick(ds.val)
        k = min(len(ds.train), TRAIN_METRIC_SAMPLES)
        _, train_metric = self._eval_quick(ds.train.head(k), loss=False)
        lr = float(self.optimizer.param_groups[0]["lr"])
        if self._sched_when == "epoch":
            self.scheduler.step()
        elif self._sched_when == "plateau":
            self.scheduler.step(val_loss)
        gn_t = getattr(self, "_last_gn_t", None)
        self._last_gn = float(gn_t) if gn_t is not None else self._last_gn
        mean_t = sum(self._epoch_times[-5:]) / len(self._epoch_times[-5:]) + (time.perf_counter() - t_eval)
        logs = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss,
                "train_metric": train_metric, "val_metric": val_metric, "metric_name": self.metric_name,
                "lr": lr, "grad_norm": self._last_gn, "samples_per_s": seen / max(dt, 1e-9),
                "eta_s": mean_t * (cfg.epochs - epoch - 1), "step": self.global_step,
                "peak_memory": peak_bytes(self.device)}
        extras: dict = {}
        for r in call_hook(self.callbacks, "on_epoch_end", self, epoch, logs):
            if isinstance(r, dict):
                extras.update(r)
        ev = {"type": "epoch", **logs}
        if extras:
            ev["extras"] = extras
        self._emit(ev)
        if len(ds.val) and not math.isfinite(val_loss):
            self._nonfinite(epoch, self.steps_per_epoch - 1)

    def _eval_quick(self, s: Split, loss: bool = True) -> tuple[float, float]:
        if len(s) == 0:
            return float("nan"), float("nan")
        if self.task == "next_token" and self.metric_name == "perplexity":  # T × vocabulary logits per sample:
            mean = mean_token_loss(self.model, s.X, s.y)  # reduced batch by batch
            return (mean if loss else float("nan")), float(torch.exp(torch.tensor(mean)))
        out = forward_all(self.model, s.X).float()
        y = self._prep_y(s)
        lv = float(self._make_loss()(out, s.X, y)) if loss else float("nan")
        return lv, quick_metric(out, s.X, s.y, self.task, self.metric_name, self._num_classes)


# -------------------------------------------------------------------------------------------- the job
class TrainingJob:
    """Runs a :class:`Trainer` in a background thread; the UI drains ``channel``.

    Example::

        job = TrainingJob(trainer).start()
        ...  # job.pause(); job.resume(); job.stop()
        events = job.channel.drain()
    """

    def __init__(self, trainer: Trainer, channel: Channel | None = None):
        self.trainer = trainer
        self.channel = channel or Channel(trainer.config.max_step_points)
        if self.channel not in trainer.listeners:
            trainer.listeners.append(self.channel)
        self.result: TrainResult | None = None
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> TrainingJob:
        """Start the worker thread; returns self."""
        if self._thread is not None:
            raise TrainingError("this job was already started")
        self._thread = threading.Thread(target=self._run, name="layerlab-train", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.result = self.trainer.fit()
        except BaseException as e:  # reported through status; kept for the caller
            self.error = e

    def pause(self) -> None:
        """Pause at the next step."""
        self.trainer.pause()

    def resume(self) -> None:
        """Continue a paused job."""
        self.trainer.resume()

    def stop(self) -> None:
        """Stop at the next step (a checkpoint is written)."""
        self.trainer.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds without raising; True when the worker has ended."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def join(self, timeout: float | None = None) -> TrainResult | None:
        """Wait for the worker; returns the result (None while running). Re-raises a training error."""
        if self._thread is not None:
            self._thread.join(timeout)
        if self.error is not None and not self.running:
            raise self.error
        return self.result

    @property
    def running(self) -> bool:
        """True while the worker thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def status(self) -> str:
        """queued, running, paused, finished, stopped or failed."""
        return self.trainer.status

    @property
    def history(self) -> dict:
        """Bounded history snapshot (same as ``channel.history``)."""
        return self.channel.history


# TrainConfig, Callback, Channel, History, evaluate and the metrics live in config, callbacks, events and metrics;
# they are re-exported here for `from builder.training.trainer import ...` (builder/__init__.py's lazy names)
__all__ = ["TrainConfig", "Trainer", "TrainingJob", "TrainResult", "Callback", "Channel", "History",
           "evaluate", "classification_metrics", "regression_metrics", "compute_loss", "resolve_device",
           "build_optimizer", "build_scheduler", "grad_norm", "amp_dtype", "precision_label"]
