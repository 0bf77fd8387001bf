"""Training settings: :class:`TrainConfig`, its defaults per task, its checks, and device/precision resolution.

One home for the numbers a run starts from. Precedence, lowest first: the field defaults adjusted for the task
and the size of the training split (:meth:`TrainConfig.defaults`) < the project's own ``training`` settings
(a template's epochs, lr, patience) < explicit overrides (CLI flags, the Train page's form, a job's or search
trial's config). :meth:`TrainConfig.resolve` applies that order; the pipeline, the CLI, jobs, search and the
Train page all go through it, so the same project resolves to the same settings everywhere.

torch is imported inside the functions that need it: a page reads the defaults without paying for torch.
Example::

    >>> TrainConfig.defaults("multiclass", n_train=1000)["epochs"]
    20
    >>> TrainConfig.resolve("binary", 300, {"lr": 0.01}, {"epochs": 3}).model_dump(include={"epochs", "lr", "batch_size"})
    {'epochs': 3, 'batch_size': 32, 'lr': 0.01}
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from builder.errors import DatasetError, TrainingError
from builder.graph.project import format_validation_error

if TYPE_CHECKING:
    import torch

SCHEDULER_PARAMS: dict[str, dict[str, Any]] = {
    "none": {},
    "step": {"step_size": None, "gamma": 0.1},
    "cosine": {"eta_min": 0.0},
    "onecycle": {"pct_start": 0.3, "div_factor": 25.0, "final_div_factor": 1e4},
    "plateau": {"factor": 0.5, "patience": 2, "min_lr": 0.0},
}


def _whole(v: float) -> bool:
    return float(v).is_integer()


#: each scheduler parameter's rule, ``(what it is, test(value))``: torch's own checks (one-cycle's pct_start,
#: the plateau's factor below 1), divisions (a factor of 0) and what keeps every learning rate of the schedule
#: at least 0 (a negative gamma or eta_min trained with a negative rate: gradient ascent).
#: :meth:`TrainConfig.check` asks them, so a setting ``layerlab validate`` accepts never fails in training.
SCHEDULER_RULES: dict[str, tuple[str, Callable[[float], bool]]] = {
    "step_size": ("a whole number of epochs, at least 1", lambda v: _whole(v) and v >= 1),
    "gamma": ("above 0 and at most 1 (the learning rate is multiplied by it)", lambda v: 0 < v <= 1),
    "eta_min": ("a learning rate, at least 0 and at most 10 as lr (the lowest of the schedule)",
                lambda v: 0 <= v <= 10),
    "pct_start": ("a share of the steps above 0 and below 1", lambda v: 0 < v < 1),
    # at least 1: the first learning rate at most lr (5e-324 divided lr into infinity, 1e-300 into 1e+298)
    "div_factor": ("at least 1 (the first learning rate is lr divided by it)", lambda v: v >= 1),
    "final_div_factor": ("at least 1 (the last learning rate is the first divided by it)", lambda v: v >= 1),
    "factor": ("above 0 and below 1 (the learning rate is multiplied by it)", lambda v: 0 < v < 1),
    "patience": ("a whole number of epochs, at least 0", lambda v: _whole(v) and v >= 0),
    "min_lr": ("a learning rate, at least 0 and at most 10 as lr (the lowest of the schedule)",
               lambda v: 0 <= v <= 10),
}


def scheduler_problems(scheduler: str, params: dict[str, Any], *, names_only: bool = False) -> list[str]:
    """Every problem of a scheduler's parameters, each as "rule; received: value" (empty: fine): names it does not
    take and (unless ``names_only``) values outside :data:`SCHEDULER_RULES` (finite numbers only).

    >>> scheduler_problems("onecycle", {"pct_start": 5, "warmup": 1})  # doctest: +NORMALIZE_WHITESPACE
    ["scheduler 'onecycle' has no parameter(s) warmup; it takes: pct_start, div_factor, final_div_factor",
     'pct_start of scheduler onecycle is a share of the steps above 0 and below 1; received: 5']
    >>> scheduler_problems("step", {"step_size": 2, "gamma": 0.5})
    []
    """
    allowed = SCHEDULER_PARAMS.get(scheduler, {})
    out = []
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        out.append(f"scheduler {scheduler!r} has no parameter(s) {', '.join(unknown)}; "
                   f"it takes: {', '.join(allowed) or 'none'}")
    for name in allowed:
        if name not in params or names_only:
            continue
        rule, test = SCHEDULER_RULES[name]
        v = params[name]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not test(v):
            out.append(f"{name} of scheduler {scheduler} is {rule}; received: {str(v)[:40]}")
    return out
SMALL_TRAIN = 500  # a training split smaller than this starts with smaller batches and more epochs
CHECKPOINT_INTERVAL_S = 60.0  # seconds between checkpoints when checkpoint_every is not set (bench/cpu_speed.py)
HEALTH_EVERY = 25  # steps between training-health samples (builder.training.health; bench/bench_health.py: overhead)


class TrainConfig(BaseModel):
    """Training settings; JSON-serialisable (``model_dump()``) and stored with every run.

    ``lr`` is the peak learning rate for the one-cycle schedule. ``early_stopping`` is a patience in
    epochs on validation loss (best weights are restored); on by default (5), ``None`` turns it off; an
    epoch counts as an improvement only when the validation loss drops by more than ``early_stopping_delta``.
    ``loss`` picks the regression loss. ``metric`` ``auto`` means accuracy for classification and R² for
    regression and reconstruction; the train metric is measured at epoch end (eval mode) on the first 512
    training samples, the train loss is the mean of the step losses.
    ``memory_format`` ``auto`` uses channels_last for models with Conv2d on image data (CPU, CUDA).
    ``init_from``/``init_nodes`` drive transfer learning in :func:`builder.runs.pipeline.run_training`;
    ``freeze`` lists node ids whose weights stay fixed (:class:`builder.training.callbacks.Freeze`).
    ``finetune``: ``full``, ``linear_probe`` (only the head trains) or ``lora`` (the head and LoRA adapters train;
    :mod:`builder.training.finetune`).
    ``health_every``: steps between samples of per-node training health (:mod:`builder.training.health`, kept as
    the run's ``health.json``); 0 turns the recording off.
    ``torch_compile``: train through ``torch.compile`` (inductor; off by default: on this project's 2-core CPU it
    did not pay, the cnn template's step slower compiled and the resnet's no faster, after half a minute of
    compiling (bench/doc_figures.py, in bench/RESULTS.md); on a GPU it can pay for long runs of large models). The validation, the test and every
    explanation run the uncompiled module; training health then samples gradients and updates but not
    activations (forward hooks would recompile); a job that compiles may start the compiler's processes.
    ``augment``: image augmentation drawn per batch on the device, e.g. ``{"flip": 1, "crop": 4}`` (empty: off;
    :mod:`builder.data.augment`), reproducible from the seed, the epoch and the batch (exact on resume).
    Checkpoints (``checkpoints/last.safetensors``): with ``checkpoint_every`` unset, one when
    ``checkpoint_interval_s`` seconds have passed since the last (checked every ``log_every`` steps and at epoch
    ends; 0: at every check), and always at the start, at pause, stop, the end, early stopping and a torch error
    before the step was applied; ``checkpoint_every`` N: every N epochs instead of the interval (0: none
    but pause and stop).
    The field defaults are the defaults when the task is not known; :meth:`defaults` adjusts them per task.
    """

    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(20, ge=1, le=100_000)
    batch_size: int = Field(64, ge=1, le=1_000_000)
    lr: float = Field(1e-3, gt=0, le=10)
    optimizer: Literal["sgd", "adam", "adamw", "rmsprop"] = "adam"
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0, le=1)
    scheduler: Literal["none", "step", "cosine", "onecycle", "plateau"] = "none"
    scheduler_params: dict[str, float | int] = Field(default_factory=dict)
    grad_clip: float | None = Field(None, gt=0)
    early_stopping: int | None = Field(5, ge=1)  # on by default; None or 0 turns it off (see _off_at_zero)
    early_stopping_delta: float = Field(1e-4, ge=0)  # smaller improvements of a converged loss do not count
    seed: int = Field(0, ge=0, lt=2**63)
    device: str = "auto"
    amp: bool | None = None  # None: on for CUDA (bfloat16 where supported), off elsewhere
    torch_compile: bool = False
    memory_format: Literal["auto", "contiguous", "channels_last"] = "auto"
    loss: Literal["auto", "mse", "l1", "huber"] = "auto"
    metric: Literal["auto", "accuracy", "f1", "r2"] = "auto"
    log_every: int = Field(10, ge=1, le=100_000)
    checkpoint_every: int | None = Field(None, ge=0, le=100_000)  # None: on a time interval (checkpoint_interval_s)
    checkpoint_interval_s: float = Field(CHECKPOINT_INTERVAL_S, ge=0, le=86_400)
    max_step_points: int = Field(2000, ge=10, le=1_000_000)
    init_from: str | None = None
    init_nodes: list[str] | None = None
    freeze: list[str] = Field(default_factory=list)
    finetune: Literal["full", "linear_probe", "lora"] = "full"  # what trains (builder.training.finetune)
    health_every: int = Field(HEALTH_EVERY, ge=0, le=1_000_000)
    augment: dict[str, float] = Field(default_factory=dict)  # image augmentation per batch (builder.data.augment)

    @field_validator("early_stopping", mode="before")
    @classmethod
    def _off_at_zero(cls, v: Any) -> Any:
        """A patience of 0 means off everywhere (project files, ``--early-stopping 0``, the Train page's 0):
        it is read as None. ``False`` is not a patience and stays refused."""
        return None if type(v) is int and v == 0 else v

    # ---- defaults and precedence
    @staticmethod
    def task_adjustments(task: str | None, n_train: int | None = None) -> dict[str, int]:
        """The fields whose starting value depends on the task and the training split's size.

        Regression and reconstruction start with 40 epochs; a training split under 500 samples with batches
        of 32 and at least 50 epochs. Everything else keeps its field default.
        """
        out: dict[str, int] = {}
        if task in ("regression", "reconstruction"):
            out["epochs"] = 40
        if n_train is not None and n_train < SMALL_TRAIN:
            out.update(batch_size=32, epochs=max(out.get("epochs", 20), 50))
        return out

    @classmethod
    def defaults(cls, task: str | None = None, n_train: int | None = None) -> dict[str, Any]:
        """Every setting's starting value for this task (field defaults with :meth:`task_adjustments`)."""
        return cls.model_validate(cls.task_adjustments(task, n_train)).model_dump()

    @classmethod
    def starting_values(cls, task: str | None, n_train: int | None = None,
                        project: dict | None = None) -> dict[str, Any]:
        """Task defaults overlaid with a project's ``training`` settings (keys that are not fields ignored);
        not validated (the Train page fills its form with it)."""
        own = {k: v for k, v in (project or {}).items() if k in cls.model_fields}
        return {**cls.defaults(task, n_train), **own}

    @classmethod
    def form_values(cls, task: str | None, n_train: int | None = None, project: dict | None = None,
                    bounds: dict[str, tuple[float, float]] | None = None) -> tuple[dict[str, Any], list[str]]:
        """:meth:`starting_values` a form can show, and the project's settings it left out: a project's value
        that its field refuses (``"epochs": null``, ``"lr": "x"``, a seed of -1: content from a link, a project
        file or a class starter) or that lies outside the form's ``bounds`` (``{field: (lowest, highest)}``) is
        replaced by the task's default, and named (``lr (received 'x')``) for the page to say so; the form's
        widgets raise on anything else. A run still validates the project's own values (:meth:`resolve`).

        >>> TrainConfig.form_values(None, None, {"epochs": None, "lr": 0.01, "seed": 9}, {"seed": (0, 5)})[1]
        ['epochs (received None)', 'seed (received 9)']
        """
        values, left = cls.starting_values(task, n_train, project), []
        defaults = cls.defaults(task, n_train)
        for key in [k for k in (project or {}) if k in cls.model_fields]:
            try:
                value = getattr(cls.model_validate({key: values[key]}), key)
            except ValidationError:
                value = None
                ok = False
            else:
                lo, hi = (bounds or {}).get(key, (None, None))
                ok = value is None or not isinstance(value, int | float) or (
                    (lo is None or value >= lo) and (hi is None or value <= hi))
            if not ok:
                left.append(f"{key} (received {str(values[key])[:20]!r})" if isinstance(values[key], str)
                            else f"{key} (received {str(values[key])[:20]})")
                value = defaults[key]
            values[key] = value
        return values, left

    @classmethod
    def resolve(cls, task: str | None, n_train: int | None = None, project: dict | None = None,
                overrides: dict | TrainConfig | None = None) -> TrainConfig:
        """The settings of a run: task defaults < ``project`` (its ``training`` dict) < ``overrides``.

        ``overrides`` as a TrainConfig counts only its explicitly set fields. Raises TrainingError.
        """
        over = (overrides.model_dump(exclude_unset=True) if isinstance(overrides, TrainConfig)
                else dict(overrides or {}))
        return cls.from_dict({**cls.starting_values(task, n_train, project), **over})

    # ---- validation
    @classmethod
    def from_dict(cls, data: dict | TrainConfig | None = None, *, stored: bool = False,
                  **overrides: Any) -> TrainConfig:
        """Validate settings; unknown keys and bad values raise TrainingError with every problem. ``stored``: the
        settings a run was recorded with, read to show or explain it (not to train): a scheduler parameter's value
        is not judged again (:func:`scheduler_problems`' ranges came after runs that kept a gamma of -1; their
        Explain page must still open), its name still is."""
        if isinstance(data, TrainConfig):
            data = data.model_dump()
        merged = {**(data or {}), **{k: v for k, v in overrides.items() if v is not None}}
        try:
            cfg = cls.model_validate(merged)
        except ValidationError as e:
            raise TrainingError(f"invalid training settings: {format_validation_error(e, 6)}. Fix: change "
                                "them on the Train page, in the project's training settings or in the command's "
                                "flags") from None
        cfg.check(stored=stored)
        return cfg

    def check(self, *, stored: bool = False) -> None:
        """Cross-field rules (``stored``: as :meth:`from_dict`). Raises TrainingError."""
        if self.nesterov and (self.optimizer != "sgd" or self.momentum <= 0):
            raise TrainingError("nesterov needs optimizer 'sgd' with momentum > 0; got "
                                f"optimizer={self.optimizer!r}, momentum={self.momentum}")
        problems = scheduler_problems(self.scheduler, self.scheduler_params, names_only=stored)
        if problems:
            raise TrainingError(f"{'; '.join(problems)}. Fix: change the scheduler's parameters in the project's "
                                "training settings (scheduler_params) or the command's --scheduler-param")
        check_device(self.device)
        if self.augment:
            from builder.data.augment import parse_augment  # lazy: heavy (numpy)

            try:
                self.augment = parse_augment(self.augment)
            except DatasetError as e:
                raise TrainingError(str(e)) from None


FEW_STEPS = 10  # optimizer steps in all below which a run has too few to learn from (the Train page says so)


def steps_per_epoch(n_train: int, batch_size: int, world: int = 1) -> int:
    """Optimizer steps in one epoch over ``n_train`` samples at ``batch_size`` (the one rule: the trainers and the
    Train page's count of steps). A last batch smaller than 2 (or than the processes, ``world``) is dropped:
    BatchNorm and DDP need samples.

    >>> steps_per_epoch(60, 64), steps_per_epoch(130, 64), steps_per_epoch(129, 64), steps_per_epoch(2, 64)
    (1, 3, 2, 1)
    """
    batch = max(1, min(int(batch_size), int(n_train)))
    nb, rem = divmod(int(n_train), batch)
    return nb + (1 if rem >= max(2, world) else 0)


# ----------------------------------------------------------------------------------- device, precision
def check_device(spec: str = "auto") -> None:
    """Raise TrainingError unless ``spec`` names a device (auto, cpu, cuda, cuda:N, mps). Whether this host has it
    is not asked: a stored run's settings are read where they were not made (the Explain probe sees no GPU, a
    workspace moves to a CPU host, a cluster's job trains on a GPU node the server lacks); the process that
    trains resolves it (:func:`resolve_device`) and a missing GPU fails that run, saying so.

    >>> check_device("cuda:1"), check_device("auto")
    (None, None)
    >>> check_device("gpu")
    Traceback (most recent call last):
    builder.errors.TrainingError: unknown device 'gpu'; use auto, cpu, cuda, cuda:N or mps
    """
    import torch  # lazy: heavy (torch)

    spec = (spec or "auto").lower()
    if spec == "auto":
        return
    try:
        dev = torch.device(spec)
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise TrainingError(f"unknown device {spec!r}; use auto, cpu, cuda, cuda:N or mps")


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device must exist. Raises TrainingError.

    A CUDA device comes back with its index (``cuda`` → ``cuda:0``, the current device), so it equals the
    device of the tensors placed on it (``torch.device("cuda") != torch.device("cuda:0")``).

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    import torch  # lazy: heavy (torch)

    spec = (spec or "auto").lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return resolve_device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    check_device(spec)
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"device {spec!r} requested but CUDA is not available; use device 'auto' or 'cpu'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise TrainingError(f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise TrainingError("device 'mps' requested but not available; use device 'auto' or 'cpu'")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise TrainingError(f"unsupported device {spec!r}; use auto, cpu, cuda or mps")
    return dev


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype for mixed precision on ``device``, or None where it is not used.

    CUDA: bfloat16 where supported, else float16 (with a GradScaler). CPU: bfloat16 where the processor
    computes it natively (AVX512-BF16 / AMX, through oneDNN), where it speeds matrix products up; None on
    other CPUs and on MPS. :class:`~builder.training.trainer.Trainer` refuses ``amp=True`` when this is None.
    """
    import torch  # lazy: heavy (torch)

    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and _cpu_has_native_bf16():
        return torch.bfloat16
    return None


def _cpu_has_native_bf16() -> bool:
    import torch  # lazy: heavy (torch)

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def precision_label(dtype: torch.dtype | None) -> str:
    """What ran, in words, for the run record and the model card: ``float32`` or ``bfloat16 autocast``."""
    if dtype is None:
        return "float32"
    name = str(dtype).removeprefix("torch.")
    return f"{name} autocast" + (" + GradScaler" if name == "float16" else "")


__all__ = ["TrainConfig", "SCHEDULER_PARAMS", "SCHEDULER_RULES", "scheduler_problems", "steps_per_epoch", "FEW_STEPS", "HEALTH_EVERY", "CHECKPOINT_INTERVAL_S", "check_device", "resolve_device", "amp_dtype", "precision_label"]
