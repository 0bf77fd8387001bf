"""Record attributions on a fixed few validation samples at the end of every epoch.

Off by default: add ``LiveAttributions(...)`` to the trainer's callbacks. The Explain page plays
``callback.frames`` back with a slider. Example::

    # not a doctest (needs files or training): run by tests/interpret/test_live.py::test_records_one_frame_per_epoch_on_fixed_samples
    live = LiveAttributions("integrated_gradients", n_samples=4, n_steps=16)
    trainer.fit(callbacks=[live])
    [f["epoch"] for f in live.frames], live.frames[0]["attributions"].shape
    # -> ([1, 2, 3], (4, 1, 8, 8))
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from builder.data.disk import atomic_file
from builder.errors import AccessDenied, ExplainError, LayerLabError
from builder.interpret.attributions import explain
from builder.interpret.methods import get_spec, method_label

try:  # the trainer's protocol; duck-typed until builder.training.trainer exists
    from builder.training.callbacks import Callback  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on what has landed
    Callback = object  # type: ignore[assignment,misc]


MAX_FRAME_BYTES = 64 * 2**20  # the recorded frames kept at most: past it every other frame goes (see record)
MAX_FILE_BYTES = 256 * 2**20  # a frames file the server reads at most (load_frames): checked before reading
MAX_PLAYED = 1_000  # frames a playback holds at most: more (a long run's small frames) are thinned evenly


def _pick_fixed(y: Tensor | None, n: int, total: int) -> list[int]:
    """First sample of each class, then the next ones in order, up to ``n`` (deterministic)."""
    if y is None or y.dim() != 1 or y.is_floating_point():
        return list(range(min(n, total)))
    chosen: list[int] = []
    seen: set[int] = set()
    for i, label in enumerate(y.tolist()):
        if label not in seen:
            seen.add(label)
            chosen.append(i)
        if len(chosen) >= n:
            return sorted(chosen)
    rest = [i for i in range(total) if i not in set(chosen)]
    return sorted(chosen + rest[: n - len(chosen)])



class LiveAttributions(Callback):  # type: ignore[misc,valid-type]
    """Trainer callback: one attribution map per fixed validation sample per epoch.

    Args:
        method: an :data:`builder.interpret.attributions.METHODS` name.
        n_samples: how many validation samples (first of each class first).
        every: record when the (1-based) epoch number is a multiple of ``every``.
        target: ``label`` (the true class; maps stay comparable across epochs) or ``predicted``.
        options: passed to :func:`builder.interpret.attributions.explain`; path methods default to ``n_steps=16``.

    Attributes:
        frames: ``[{"epoch": int, "attributions": ndarray (n, ...), "target": ndarray | None}]``.
        inputs, labels, indices: the fixed samples. seconds: time spent per recorded epoch.
    """

    def __init__(self, method: str = "integrated_gradients", n_samples: int = 4, every: int = 1,
                 target: str = "label", **options: Any):
        try:
            spec = get_spec(method)
        except ExplainError as e:
            raise ExplainError(f"live attributions: {e}") from None
        if not isinstance(n_samples, int) or n_samples < 1:
            raise ExplainError(f"n_samples must be a positive integer; received {n_samples!r}")
        if not isinstance(every, int) or every < 1:
            raise ExplainError(f"every must be a positive integer; received {every!r}")
        if target not in ("label", "predicted"):
            raise ExplainError(f"target must be 'label' or 'predicted'; received {target!r}")
        self.method, self.n_samples, self.every, self.target_mode = spec.name, n_samples, every, target
        if spec.uses_steps:
            options.setdefault("n_steps", 16)  # keeps the cost per epoch small (bench/RESULTS.md)
        self.options = options
        self.frames: list[dict[str, Any]] = []
        self.seconds: list[float] = []
        self.inputs: Tensor | None = None
        self.labels: Tensor | None = None
        self.indices: list[int] = []
        self.error: str | None = None  # set when recording failed; later epochs are skipped

    def _select(self, trainer: Any) -> None:
        val = getattr(getattr(trainer, "dataset", None), "val", None)
        if val is None:
            raise ExplainError("live attributions need a validation split (trainer.dataset.val)")
        if hasattr(val, "X"):  # builder.data.Split
            X, y = val.X, getattr(val, "y", None)
        else:  # an (X, y) pair
            X, y = val[0], (val[1] if len(val) > 1 else None)
        self.indices = _pick_fixed(y, self.n_samples, len(X))
        self.inputs = X[self.indices].detach().clone()
        self.labels = None if y is None else y[self.indices].detach().clone()

    def on_train_begin(self, trainer: Any) -> None:
        """Fix the samples; frames from a previous run are dropped."""
        self.frames, self.seconds, self.error = [], [], None
        self._select(trainer)

    def record(self, model: torch.nn.Module, epoch: int, device: Any = "cpu") -> dict[str, Any]:
        """Compute and store one frame; returns the summary put in the epoch's extras."""
        if self.inputs is None:
            raise ExplainError("live attributions: on_train_begin was not called")
        start = time.perf_counter()
        x = self.inputs.to(device)
        tgt = None
        if self.target_mode == "label" and self.labels is not None and not self.labels.is_floating_point() \
                and self.labels.dim() == 1:
            tgt = self.labels.to(device)
        if not x.is_floating_point() and self.method != get_spec(self.method).token_method():
            # token ids have no input gradient: attribute through the Embedding instead
            self.method = get_spec(self.method).token_method()
            if get_spec(self.method).uses_steps:
                self.options.setdefault("n_steps", 16)
        with torch.enable_grad():
            exp = explain(model, x, self.method, tgt, **self.options)
        self.frames.append({"epoch": int(epoch), "attributions": exp.attributions.cpu().numpy(),
                            "target": None if exp.target is None else exp.target.cpu().numpy()})
        while len(self.frames) > 2 and sum(f["attributions"].nbytes for f in self.frames) > MAX_FRAME_BYTES:
            # a long run: every other frame goes (the first and the newest stay) and the interval doubles, so
            # the playback still spans the whole run within MAX_FRAME_BYTES
            self.frames = self.frames[:-1:2] + self.frames[-1:]
            self.every *= 2
        sec = time.perf_counter() - start
        self.seconds.append(sec)
        return {"method": self.method, "epoch": int(epoch), "n_samples": len(self.indices),
                "seconds": round(sec, 4), "frames": len(self.frames)}

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict) -> dict | None:
        """Record a frame every ``every`` epochs; returns ``{"live_attributions": summary}``.

        Frames are numbered like the trainer's events: ``logs["epoch"]`` (1-based), else ``epoch + 1``.
        """
        number = int(logs.get("epoch", epoch + 1)) if isinstance(logs, dict) else epoch + 1
        if number % self.every:
            return None
        if self.error is not None:
            return None
        try:
            if self.inputs is None:
                self._select(trainer)
            model = getattr(trainer, "prediction_model", trainer.model)
            if model is None:  # an objective without a prediction (a GAN): nothing to attribute
                return None
            summary = self.record(model, number, getattr(trainer, "device", "cpu"))
        except ExplainError as e:  # an optional view must never stop a training run
            self.error = str(e)
            return {"live_attributions": {"method": self.method, "epoch": number, "error": self.error}}
        return {"live_attributions": summary}

    def on_train_end(self, trainer: Any, result: Any) -> None:
        """Nothing to release; frames stay on the callback."""
        return None

    def stacked(self) -> np.ndarray:
        """All frames as one array (epochs, n_samples, ...)."""
        if not self.frames:
            raise ExplainError("live attributions: no frames recorded yet")
        return np.stack([f["attributions"] for f in self.frames])

    def save(self, path: str | Path) -> Path:
        """Write the frames and the fixed samples to a safetensors file atomically (a job's run folder)."""
        from safetensors.torch import save_file  # lazy: heavy (safetensors)

        if self.inputs is None or not self.frames:
            raise ExplainError("live attributions: nothing recorded yet")
        path = Path(path)
        tensors = {"inputs": self.inputs.detach().cpu().contiguous(),
                   "indices": torch.tensor(self.indices, dtype=torch.int64),
                   "attributions": torch.from_numpy(np.ascontiguousarray(self.stacked())),
                   "epochs": torch.tensor(self.epochs, dtype=torch.int64)}
        if self.labels is not None:
            tensors["labels"] = self.labels.detach().cpu().contiguous()
        if all(f["target"] is not None for f in self.frames):
            tensors["targets"] = torch.from_numpy(np.stack([np.asarray(f["target"]) for f in self.frames]))
        path.parent.mkdir(parents=True, exist_ok=True)
        # a full disk: one line (builder.data.disk), the frames recorded before kept
        with atomic_file(path, "the live attributions") as tmp:
            save_file(tensors, str(tmp), metadata={"method": self.method})
        return path

    @property
    def epochs(self) -> list[int]:
        """Epoch of each frame."""
        return [f["epoch"] for f in self.frames]


#: bytes per element of each safetensors dtype (an unknown one counts as the widest)
_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
                "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


def _nbytes(part: Any) -> int:
    """The bytes a safetensors slice's tensor takes once read (its header's shape and dtype)."""
    return math.prod(int(d) for d in part.get_shape()) * _DTYPE_BYTES.get(str(part.get_dtype()), 8)


def _within_bound(size: int) -> None:
    if size > MAX_FILE_BYTES:
        raise ExplainError(f"the live attributions of this run are too large to play back; received: "
                           f"{size / 2**20:.0f} MiB, over {MAX_FILE_BYTES // 2**20} MiB. Fix: record them "
                           "with fewer samples, or on a smaller input")


def load_frames(path: str | Path) -> dict[str, Any] | None:
    """Frames written by :meth:`LiveAttributions.save` as numpy arrays (None when there is no file):
    ``method``, ``epochs`` (E,), ``attributions`` (E, n, ...), ``inputs``, ``labels``, ``indices``, ``targets``."""
    from builder.training.checkpoint import read_tensor_file  # lazy: heavy (safetensors)

    path = Path(path)
    if not path.is_file():
        return None
    _within_bound(path.stat().st_size)  # a file too large is not opened at all
    try:
        # and the tensors of the very file opened (the size above is another file's once the job has renamed new
        # frames over these) are bounded before they are read into the server
        tensors, meta = read_tensor_file(path, lambda f: _within_bound(sum(_nbytes(f.get_slice(k))
                                                                           for k in f.keys())))  # noqa: SIM118
        out: dict[str, Any] = {k: t.numpy() for k, t in tensors.items()}
        out["method"] = meta.get("method", "")
    except ExplainError:
        raise
    except Exception as e:  # a foreign or truncated file
        raise ExplainError(f"cannot read live attributions {path.name}: {e}") from None
    out.setdefault("labels", None)
    out.setdefault("targets", None)
    _check_frames(out, path.name)
    if len(out["epochs"]) > MAX_PLAYED:  # a long run's many small frames: evenly thinned, first and newest kept
        keep = np.unique(np.linspace(0, len(out["epochs"]) - 1, MAX_PLAYED).round().astype(np.int64))
        for k in ("epochs", "attributions", "targets"):
            if out[k] is not None:
                out[k] = out[k][keep]
    out["epochs"] = [int(e) for e in out["epochs"]]
    return out


def _check_frames(out: dict[str, Any], name: str) -> None:
    """Refuse frames that are not as :meth:`LiveAttributions.save` writes them (a job wrote the file): every part
    there, one epoch (an integer) per frame, one index per sample, labels and targets that fit. ExplainError.

    >>> ok = {"epochs": np.arange(3), "attributions": np.zeros((3, 2, 4)), "inputs": np.zeros((2, 4)),
    ...       "indices": np.arange(2), "labels": None, "targets": None}
    >>> _check_frames(ok, "f")
    >>> _check_frames({**ok, "epochs": np.arange(9)}, "f")
    Traceback (most recent call last):
    builder.errors.ExplainError: live attributions f are not as LayerLab writes them: 9 epochs for 3 frames. Fix: record them again (train the run with live attributions)
    """
    def bad(what: str) -> ExplainError:
        return ExplainError(f"live attributions {name} are not as LayerLab writes them: {what}. Fix: record them "
                            "again (train the run with live attributions)")

    if missing := [k for k in ("epochs", "attributions", "inputs", "indices") if k not in out]:
        raise bad(f"no {', '.join(missing)}")
    epochs, att, inputs, idx = out["epochs"], out["attributions"], out["inputs"], out["indices"]
    if epochs.ndim != 1 or epochs.dtype.kind not in "iu" or idx.ndim != 1 or idx.dtype.kind not in "iu":
        raise bad("epochs and indices must be lists of integers")
    if att.ndim < 2 or inputs.ndim < 1:
        raise bad(f"attributions of shape {tuple(att.shape)}, inputs of shape {tuple(inputs.shape)}")
    if len(epochs) != att.shape[0]:
        raise bad(f"{len(epochs)} epochs for {att.shape[0]} frames")
    if not len(idx) == att.shape[1] == inputs.shape[0]:
        raise bad(f"{len(idx)} sample indices, {att.shape[1]} attributed samples, {inputs.shape[0]} inputs")
    for k, n in (("labels", inputs.shape[0]), ("targets", att.shape[0])):
        if out[k] is not None and (out[k].ndim < 1 or out[k].shape[0] != n):
            raise bad(f"{k} of shape {tuple(out[k].shape)} for {n}")


def records_live(store: Any, run_id: str) -> bool:
    """Whether a run's job records live attributions (its spec names the ``live_attributions`` callback)."""
    try:
        spec = store.job_spec(run_id) or {}
    except AccessDenied:
        raise
    except (LayerLabError, OSError, ValueError):
        return False
    callbacks = spec.get("callbacks") if isinstance(spec, dict) else None
    return isinstance(callbacks, list) and any(str(c).startswith("live_attributions") for c in callbacks)


def recording_run(store: Any, runs: list[dict]) -> dict | None:
    """The first of ``runs`` (live runs, newest first) that records attributions or has frames, or None."""
    for r in runs:
        if records_live(store, r["id"]) or live_playback(store, r) is not None:
            return r
    return None


@dataclass(frozen=True)
class LivePlayback:
    """The frames a run recorded, ready to play: the method's label, one name per sample, the frames."""

    method: str
    label: str
    names: list[str]  # ``val #j · class``
    frames: list[dict[str, Any]]  # {"epoch", "attributions" (n, ...), "target"}
    inputs: np.ndarray  # (n, ...)
    vocab: list[str]
    feature_names: list[str]

    def sample_view(self, s: int) -> dict[str, Any]:
        """Keywords of :func:`~builder.interpret.figures.live_attribution_figure` for sample ``s``: the image
        (C, H, W), the tokens or the feature names, whichever fits the input."""
        x = np.asarray(self.inputs[s])
        if x.ndim == 3:
            return {"image": x, "tokens": None, "feature_names": None}
        if not np.issubdtype(x.dtype, np.floating):
            words = [self.vocab[i] if 0 <= i < len(self.vocab) else str(i) for i in x.reshape(-1).tolist()]
            return {"image": None, "tokens": words, "feature_names": None}
        feats = self.feature_names if len(self.feature_names) == x.size else None
        return {"image": None, "tokens": None, "feature_names": feats}


def live_frames(store: Any, run_id: str) -> dict | None:
    """The live attributions a job recorded for ``run_id`` (:func:`load_frames` of its run folder's file), or
    None when none were recorded."""
    return load_frames(store.folder(run_id).live_attributions)


def live_playback(store: Any, run: dict) -> LivePlayback | None:
    """The live attributions recorded with ``run`` (its row), or None when it recorded none (yet).

    Raises:
        ExplainError: a file that cannot be read.
    """
    rec = live_frames(store, run["id"])
    if rec is None or not rec["epochs"]:
        return None
    info = run.get("dataset_info") or {}
    classes = list(info.get("class_names") or [])
    indices = [int(i) for i in rec["indices"]]
    names = [f"val #{j}" for j in indices]
    labels = rec.get("labels")
    if labels is not None and labels.ndim == 1 and not np.issubdtype(labels.dtype, np.floating):
        names = [f"val #{j} · {classes[t] if 0 <= t < len(classes) else t}" for j, t in zip(indices, labels.tolist())]
    frames = [{"epoch": e, "attributions": rec["attributions"][k],
               "target": None if rec.get("targets") is None else rec["targets"][k]}
              for k, e in enumerate(rec["epochs"])]
    try:
        label = method_label(rec["method"])
    except ExplainError:  # a method no longer registered: its name
        label = str(rec["method"])
    return LivePlayback(rec["method"], label, names, frames, rec["inputs"], list(info.get("vocab") or []),
                        list(info.get("feature_names") or []))


__all__ = ["LiveAttributions", "LivePlayback", "load_frames", "live_frames", "live_playback", "records_live", "recording_run"]
