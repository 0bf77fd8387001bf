"""Training callbacks: the :class:`Callback` hooks and the built-in features that carry state.

Features with state live here, not as branches of the step loop (Lightning's ``callbacks/`` is the model):
:class:`EarlyStopping` (patience on validation loss), :class:`BestWeights` (keep and restore the best
epoch's weights), :class:`ChannelsLast` (memory format of convolutional image models) and :class:`Freeze`
(fixed weights of named nodes). The trainer adds them from its :class:`~builder.training.config.TrainConfig`
(:func:`builtin_callbacks`) after the caller's own callbacks. Each returns its state from :meth:`Callback.state_dict`;
the trainer writes it into the checkpoint under the callback's :attr:`Callback.state_key` (tensors, under the key
``tensors``, as checkpoint tensors) and gives it back through :meth:`Callback.load_state_dict` on resume, so a
resumed run stops, restores and freezes exactly as the uninterrupted one.

Hooks are called in this order: :meth:`~Callback.setup` (before the optimizer is built and the checkpoint
restored: model and data may still change), :meth:`~Callback.on_train_begin`, :meth:`~Callback.on_epoch_end`
per epoch, :meth:`~Callback.on_before_test` (a finished run, before its test evaluation),
:meth:`~Callback.on_train_end`. A callback stops training after an epoch by calling
``trainer.stop_after_epoch(message)``. Objects that define only some hooks work too (the trainer calls the
ones they have). Example::

    >>> class PrintLoss(Callback):
    ...     def on_epoch_end(self, trainer, epoch, logs):
    ...         print(round(logs["val_loss"], 2))
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch

from builder.data.splits import Dataset, PixelSplit, Split
from builder.errors import TrainingError
from builder.graph.latency import module_latency
from builder.training.run_folder import RunFolder
from builder.training.weights import save_weights

if TYPE_CHECKING:
    from builder.training.config import TrainConfig
    from builder.training.trainer import Trainer, TrainResult


class Callback:
    """Base class for training callbacks; override any of the no-op methods.

    ``on_epoch_end`` may return a dict: it is merged into that epoch's event under ``"extras"``.
    """

    @property
    def state_key(self) -> str:
        """The name this callback's state is stored under in a checkpoint (unique per trainer)."""
        return type(self).__qualname__

    def setup(self, trainer: Trainer) -> None:
        """Called at the start of ``fit``, before the optimizer is built and a checkpoint is restored."""

    def on_train_begin(self, trainer: Trainer) -> None:
        """Called once before the first step (also after a resume)."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> dict | None:
        """Called after validation of each epoch with that epoch's logs."""
        return None

    def on_before_test(self, trainer: Trainer) -> None:
        """Called when a run finished, before the test split is evaluated and the weights are saved."""

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        """Called once when training ends (finished, stopped or failed)."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state for checkpoints; tensors go under ``"tensors"`` as ``{name: tensor}``."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`; raises ValueError/TypeError for a malformed state."""


# ------------------------------------------------------------------------------------------ checks
def int_in(v: Any, what: str, lo: int, hi: int) -> int:
    """``v`` when it is an int (not a bool) in ``[lo, hi]``; else ValueError (crafted checkpoints)."""
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ValueError(f"{what} must be an integer in [{lo}, {hi}]; received: {str(v)[:40]!r}")
    return v


def number(v: Any, what: str) -> float:
    """``float(v)`` for an int or float (not a bool); else TypeError (crafted checkpoints)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{what} must be a number; received: {type(v).__name__}")
    return float(v)


def improves(value: float, best: float, min_delta: float) -> bool:
    """Whether a validation loss ``value`` beats ``best`` by more than ``min_delta`` (NaN never does)."""
    return value < best - max(min_delta, 1e-12)


# ------------------------------------------------------------------------------------ early stopping
class EarlyStopping(Callback):
    """Stop when the validation loss has not improved by more than ``min_delta`` for ``patience`` epochs.

    With ``patience=None`` it only tracks the best epoch (reported as ``TrainResult.best_epoch``).
    State: ``best`` (loss), ``best_epoch`` (1-based, or None) and ``wait`` (epochs since the best).
    """

    def __init__(self, patience: int | None = 5, min_delta: float = 1e-4):
        self.patience, self.min_delta = patience, min_delta
        self.best, self.best_epoch, self.wait = math.inf, None, 0

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None:
        """Track the best validation loss; ask the trainer to stop when patience ran out."""
        if improves(logs["val_loss"], self.best, self.min_delta):
            self.best, self.best_epoch, self.wait = logs["val_loss"], epoch + 1, 0
        else:
            self.wait += 1
        if self.patience and self.wait >= self.patience:
            trainer.stop_after_epoch(f"early stopping: validation loss did not improve for {self.patience} "
                                     f"epochs; best epoch {self.best_epoch}")

    def state_dict(self) -> dict[str, Any]:
        """``{"best", "best_epoch", "wait"}``."""
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore after checking types and ranges."""
        self.best = number(state.get("best", math.inf), "best")
        self.wait = int_in(state.get("wait", 0), "wait", 0, 100_000)
        be = state.get("best_epoch")
        self.best_epoch = None if be is None else int_in(be, "best_epoch", 0, 100_000)


class BestWeights(Callback):
    """Keep a copy of the weights of the best epoch (validation loss) and load them when the run finishes.

    State: ``best``, ``best_epoch`` and the weights (``tensors``), so a resumed run restores the same epoch.
    """

    def __init__(self, min_delta: float = 1e-4):
        self.min_delta = min_delta
        self.best, self.best_epoch = math.inf, None
        self.weights: dict[str, torch.Tensor] | None = None
        self._model: torch.nn.Module | None = None

    def setup(self, trainer: Trainer) -> None:
        """Remember the model whose weights are kept."""
        self._model = trainer.model

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None:
        """Copy the weights when the validation loss improved."""
        if improves(logs["val_loss"], self.best, self.min_delta):
            self.best, self.best_epoch = logs["val_loss"], epoch + 1
            self.weights = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}

    def on_before_test(self, trainer: Trainer) -> None:
        """Load the best weights into the model (the test metrics and saved weights are theirs)."""
        if self.weights is not None:
            trainer.model.load_state_dict(self.weights)

    def state_dict(self) -> dict[str, Any]:
        """``{"best", "best_epoch", "tensors": weights}``."""
        return {"best": self.best, "best_epoch": self.best_epoch, "tensors": dict(self.weights or {})}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore; weights that do not fit the model are refused (ValueError)."""
        self.best = number(state.get("best", math.inf), "best")
        be = state.get("best_epoch")
        self.best_epoch = None if be is None else int_in(be, "best_epoch", 0, 100_000)
        tensors = state.get("tensors") or {}
        if not isinstance(tensors, dict):
            raise TypeError("best weights must be a dict of tensors")
        if self._model is None:
            raise ValueError("BestWeights state loaded before setup")
        sd = self._model.state_dict()
        bad = [k for k, v in tensors.items() if k not in sd or v.shape != sd[k].shape]
        if bad:
            raise ValueError(f"best weights {bad[:3]} do not fit the model")
        device = next(iter(sd.values())).device if sd else torch.device("cpu")
        self.weights = {k: v.to(device) for k, v in tensors.items()} or None


# ------------------------------------------------------------------------------------- memory format
class ChannelsLast(Callback):
    """Train a convolutional image model in channels_last memory format (model and data).

    ``setting``: ``auto`` (Conv2d models on float image data, on CPU and CUDA: convolutions on (N, H, W, C)
    memory run ~15% faster with oneDNN and cuDNN), ``channels_last`` (any 3-D float input) or ``contiguous``.
    State: ``enabled``, what was decided (a resumed run decides the same from the same setting).
    """

    def __init__(self, setting: str = "auto"):
        self.setting = setting
        self.enabled = False

    @staticmethod
    def applies(setting: str, model: torch.nn.Module, ds: Dataset, device: torch.device) -> bool:
        """Whether ``setting`` puts this model and dataset into channels_last on ``device``."""
        if setting == "contiguous" or ds.info.input_dtype != "float32" or len(ds.info.input_shape) != 3:
            return False
        if setting == "channels_last":
            return True
        return device.type in ("cpu", "cuda") and any(isinstance(m, torch.nn.Conv2d) for m in model.modules())

    @staticmethod
    def convert(ds: Dataset) -> Dataset:
        """``ds`` with its samples in channels_last memory (reconstruction targets stay the inputs)."""
        def conv(s: Split) -> Split:
            if isinstance(s, PixelSplit):  # uint8 rows: each batch is made channels_last (never the whole split)
                return s.with_channels_last()
            X = s.X.contiguous(memory_format=torch.channels_last)
            return Split(X, X if s.y is s.X else s.y)
        return Dataset(ds.info, conv(ds.train), conv(ds.val), conv(ds.test))

    def setup(self, trainer: Trainer) -> None:
        """Convert the trainer's model and dataset when the setting applies."""
        self.enabled = self.applies(self.setting, trainer.model, trainer.dataset, trainer.device)
        if self.enabled:
            trainer.model = trainer.model.to(memory_format=torch.channels_last)
            trainer.dataset = self.convert(trainer.dataset)

    def state_dict(self) -> dict[str, Any]:
        """``{"enabled"}``."""
        return {"enabled": self.enabled}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing to restore: :meth:`setup` decided from the same setting; the value is checked."""
        if not isinstance(state.get("enabled", False), bool):
            raise TypeError("enabled must be a bool")


# ------------------------------------------------------------------------------------------ freezing
def freeze_nodes(model: torch.nn.Module, nodes: Iterable[str]) -> list[str]:
    """Set ``requires_grad=False`` on the parameters of these node ids (``model.layerlab_names`` maps node ids
    to module names). Raises TrainingError for unknown ids."""
    names = dict(getattr(model, "layerlab_names", {}) or {})
    frozen = []
    for nid in nodes:
        if nid not in names:
            raise TrainingError(f"cannot freeze {nid!r}: no such node with weights; nodes are "
                                f"{', '.join(sorted(names))}")
        prefix = names[nid] + "."
        for k, p in model.named_parameters():
            if k.startswith(prefix):
                p.requires_grad_(False)
        frozen.append(nid)
    return frozen


class Freeze(Callback):
    """Keep the weights of these node ids fixed (transfer learning: train only a new head).

    State: ``frozen``, the node ids frozen; a resumed run freezes the same ones before its optimizer is built.
    """

    def __init__(self, nodes: Iterable[str]):
        self.nodes = list(nodes)
        self.frozen: list[str] = []

    def setup(self, trainer: Trainer) -> None:
        """Freeze the nodes' parameters before the optimizer collects the trainable ones."""
        self.frozen = freeze_nodes(trainer.model, self.nodes)

    def state_dict(self) -> dict[str, Any]:
        """``{"frozen"}``."""
        return {"frozen": list(self.frozen)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """A checkpoint's frozen nodes must be the ones frozen now (the optimizer state depends on them)."""
        saved = state.get("frozen", [])
        if not isinstance(saved, list) or sorted(map(str, saved)) != sorted(self.frozen):
            raise ValueError(f"the checkpoint froze {saved!r}; this run freezes {self.frozen!r}")


class RecordLatency(Callback):
    """When a run finishes, time each node of the trained model on the run's device (a batch of test samples,
    ``repeats`` forward passes on one thread after ``warmup``, with the p10-p90 spread and the load;
    :func:`builder.graph.latency.module_latency`) and keep it as the run folder's ``latency.json``: the canvas's
    cost overlay offers it as "measured latency". Skipped for models above
    ``max_work`` multiply-adds per timed batch (so a big model's run does not spend minutes on it); a failure here
    never fails the run."""

    def __init__(self, macs_per_sample: int, batch_size: int = 32, repeats: int = 10, warmup: int = 2,
                 max_work: float = 2e9):
        self.macs, self.batch, self.repeats, self.warmup, self.max_work = (int(macs_per_sample), int(batch_size),
                                                                          repeats, warmup, max_work)

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        names = getattr(trainer.model, "layerlab_names", None)
        if result.status != "finished" or trainer.run_dir is None or not names:
            return
        split = trainer.dataset.test if len(trainer.dataset.test) else trainer.dataset.train
        n = max(1, min(self.batch, len(split)))
        if self.macs * n * (self.repeats + self.warmup) > self.max_work:
            return

        try:
            lat = module_latency(trainer.model, [split.head(n).X], names, repeats=self.repeats, warmup=self.warmup)
            folder = RunFolder(trainer.run_dir)
            folder.latency.write_text(json.dumps(lat.to_dict(), indent=1), encoding="utf-8")
        except Exception:  # noqa: BLE001 - a measurement for the canvas; the run has finished either way
            return


class EpochWeights(Callback):
    """After an epoch, the model's weights as the run folder's ``checkpoints/epoch.safetensors`` (written to a
    temporary name and renamed, so a reader sees a whole file): Try it and Explain answer from the newest epoch
    while the run trains, not from the last checkpoint (written every ``checkpoint_interval_s``). At most
    :attr:`MAX_SHARE` of the training time goes to it (epochs shorter than that share of a write are skipped until
    it is due: a 5,000-epoch run on a toy set is not slowed); skipped for a model over ``max_bytes`` of weights (the
    checkpoint serves those) and on ranks other than 0; removed when the run finishes (its final weights replace
    it)."""

    MAX_SHARE = 0.05

    def __init__(self, max_bytes: int = 64 * 2**20):
        self.max_bytes = int(max_bytes)
        self._written: float | None = None  # time.perf_counter() when the last write ended
        self._cost = 0.0  # seconds the last write took

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None:
        if trainer.run_dir is None or getattr(trainer, "rank", 0) != 0:
            return
        start = time.perf_counter()
        if self._written is not None and start - self._written < self._cost / self.MAX_SHARE:
            return
        size = sum(t.numel() * t.element_size() for t in trainer.model.state_dict().values())
        if size <= self.max_bytes:
            save_weights(trainer.model, RunFolder(trainer.run_dir).create().epoch_weights)
            self._written = time.perf_counter()
            self._cost = self._written - start

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        if trainer.run_dir is not None and result.status == "finished":
            RunFolder(trainer.run_dir).epoch_weights.unlink(missing_ok=True)


def builtin_callbacks(cfg: TrainConfig) -> list[Callback]:
    """The callbacks a config asks for: channels_last and freezing (setup order), early stopping (always:
    it reports the best epoch) and, with early stopping on, best weights. The trainer adds the training-health
    recording (:class:`builder.training.health.HealthMonitor`) when ``health_every`` > 0."""
    out: list[Callback] = [ChannelsLast(cfg.memory_format)]
    if cfg.freeze:
        out.append(Freeze(cfg.freeze))
    out.append(EarlyStopping(cfg.early_stopping, cfg.early_stopping_delta))
    if cfg.early_stopping:
        out.append(BestWeights(cfg.early_stopping_delta))
    return out


__all__ = ["Callback", "EarlyStopping", "BestWeights", "ChannelsLast", "Freeze", "RecordLatency", "EpochWeights",
           "freeze_nodes",
           "builtin_callbacks", "improves"]
