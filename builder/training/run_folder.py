"""A run's folder: the one place that names the files of ``<workspace>/runs/<run id>/``.

Nobody else joins a file name onto a run folder: every reader and writer asks a :class:`RunFolder` for the
path (MLflow's ``file_store`` with its ``_get_*_path`` helpers is the model). The names are those older
workspaces hold, so they keep working::

    project.json                     the project snapshot trained
    checkpoints/last.safetensors     the last checkpoint (``last.previous.safetensors`` before it)
    checkpoints/epoch.safetensors    the newest epoch's weights while the run trains (Try it, Explain read them)
    model.safetensors                final weights (the best epoch with early stopping; an import's weights)
    dataset.safetensors              the data of an upload, kept so the run can be resumed
    job.json / job.log               the job's spec and its process output (builder.jobs.queue)
    tmp/                             the job's private HOME and TMPDIR while it runs (builder.jobs.job_sandbox)
    live_attributions.safetensors    attributions recorded during training (builder.interpret.live)
    model_card.md                    the Markdown model card (builder.runs.modelcard)
    imported.json                    the project of an imported model (builder.interchange.importer)
    calibration.json                 temperature, ECE and coverage of a classifier (builder.interpret.calibration)
    latency.json                     measured time per node of the trained model (builder.training.callbacks.RecordLatency)
    health.json                      per-node gradient/activation samples while training (builder.training.health)
    prune.json                       a pruned run: what was removed, size, latency, test before/after (builder.training.prune)
    robustness.json                  accuracy vs ε under an adversarial attack, flipped examples (builder.interpret.robustness)
    samples.npz                      a generator's samples on fixed noise, one array per epoch (builder.training.multi)
    tokenizer.json                   the tokenizer learned on a text run's training split (builder.data.text)
    text_samples.json                a language model's continuations of a prompt, one list per epoch
    forecast.json                    a forecaster's first test windows: lookback, actual, forecast (builder.training.forecasts)
    exports/                         model.onnx, model.int8.onnx, quantization.json, model.py, ...

Example::

    >>> folder = RunFolder("/ws/runs/20261121-104000-ab12cd")
    >>> folder.checkpoint.relative_to(folder.path).as_posix()
    'checkpoints/last.safetensors'
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from builder.data.access import refusal
from builder.data.disk import write_atomic
from builder.data.records import number as _number
from builder.data.records import number_list as _numbers
from builder.data.records import text as record_text
from builder.errors import RunStoreError


class RunFolder:
    """Named paths into one run folder (nothing is created or read until asked)."""

    PROJECT = "project.json"
    CHECKPOINTS = "checkpoints"
    CHECKPOINT = "last.safetensors"
    EPOCH_WEIGHTS = "epoch.safetensors"
    WEIGHTS = "model.safetensors"
    DATASET = "dataset.safetensors"
    JOB_SPEC = "job.json"
    JOB_LOG = "job.log"
    TMP = "tmp"
    LIVE_ATTRIBUTIONS = "live_attributions.safetensors"
    MODEL_CARD = "model_card.md"
    IMPORTED = "imported.json"
    CALIBRATION = "calibration.json"
    HEALTH = "health.json"
    LATENCY = "latency.json"
    PRUNE = "prune.json"
    ROBUSTNESS = "robustness.json"
    SAMPLES = "samples.npz"
    TOKENIZER = "tokenizer.json"
    TEXT_SAMPLES = "text_samples.json"
    FORECASTS = "forecast.json"
    EXPORTS = "exports"
    ONNX = "model.onnx"
    ONNX_INT8 = "model.int8.onnx"
    QUANTIZATION = "quantization.json"
    PYTHON = "model.py"
    CHECKPOINT_WEIGHTS = "last_checkpoint.safetensors"
    TRACKING = "tracking.json"

    def __init__(self, path: str | os.PathLike, *, writable: bool = False):
        self.path = Path(path)
        self.writable = writable  # made by the store's write accessor (RunStore.folder(run_id, write=True))

    def to_write(self) -> RunFolder:
        """This folder, for a writer handed it: only one made by the store's write accessor
        (``RunStore.folder(run_id, write=True)``, which asked that the actor controls the run) may be written into.

        Raises:
            AccessDenied: a folder opened to read (shared mode and a teacher read runs they do not control),
                worded as an unknown run.
        """
        if not self.writable:
            raise refusal(self.run_id)
        return self

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunFolder) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    @property
    def run_id(self) -> str:
        """The run id (the folder's name)."""
        return self.path.name

    # ---- files written when the run is created and while it trains
    @property
    def project(self) -> Path:
        """The project snapshot the run trained."""
        return self.path / self.PROJECT

    @property
    def checkpoints(self) -> Path:
        """The checkpoints folder."""
        return self.path / self.CHECKPOINTS

    @property
    def checkpoint(self) -> Path:
        """The last checkpoint (may not exist; see :func:`builder.training.checkpoint.previous_path`)."""
        return self.checkpoints / self.CHECKPOINT

    @property
    def epoch_weights(self) -> Path:
        """The newest epoch's weights, written after every epoch of a small model while the run trains (cheaper than
        a checkpoint: no optimizer state; :class:`builder.training.callbacks.EpochWeights`)."""
        return self.checkpoints / self.EPOCH_WEIGHTS

    @property
    def weights(self) -> Path:
        """The final weights (exist once the run finished, or for an imported model)."""
        return self.path / self.WEIGHTS

    @property
    def dataset(self) -> Path:
        """The dataset snapshot of an upload (absent for a built-in dataset, which is reloaded)."""
        return self.path / self.DATASET

    @property
    def job_spec(self) -> Path:
        """The job spec a job process reads (``builder.jobs.queue.JobSpec`` as JSON)."""
        return self.path / self.JOB_SPEC

    @property
    def job_log(self) -> Path:
        """The job process's output."""
        return self.path / self.JOB_LOG

    @property
    def tracking(self) -> Path:
        """What of the run reached each MLflow tracker (:class:`builder.tracking.TrackingState`)."""
        return self.path / self.TRACKING

    @property
    def tmp(self) -> Path:
        """The job's private home and temporary folder while it runs (removed when it ends)."""
        return self.path / self.TMP

    @property
    def live_attributions(self) -> Path:
        """Attribution frames recorded during training."""
        return self.path / self.LIVE_ATTRIBUTIONS

    @property
    def model_card(self) -> Path:
        """The Markdown model card."""
        return self.path / self.MODEL_CARD

    @property
    def imported(self) -> Path:
        """The project file of an imported model."""
        return self.path / self.IMPORTED

    @property
    def calibration(self) -> Path:
        """The calibration report (temperature, ECE before/after, coverage; builder.interpret.calibration)."""
        return self.path / self.CALIBRATION

    @property
    def health(self) -> Path:
        """The training-health log (per-node samples; builder.training.health, read by builder.interpret.doctor)."""
        return self.path / self.HEALTH

    @property
    def latency(self) -> Path:
        """Measured seconds per node of the trained model (:class:`builder.graph.latency.Latency` as JSON)."""
        return self.path / self.LATENCY

    @property
    def samples(self) -> Path:
        """A generator's samples on fixed noise per epoch (``epoch_<k>`` arrays; builder.training.multi)."""
        return self.path / self.SAMPLES

    @property
    def tokenizer(self) -> Path:
        """The tokenizer learned on a text run's training split (its JSON; builder.data.text)."""
        return self.path / self.TOKENIZER

    @property
    def text_samples(self) -> Path:
        """A language model's continuations of a fixed prompt, per epoch (builder.training.text_samples)."""
        return self.path / self.TEXT_SAMPLES

    @property
    def forecasts(self) -> Path:
        """A forecaster's first test windows with its forecasts (builder.training.forecasts)."""
        return self.path / self.FORECASTS

    @property
    def prune(self) -> Path:
        """The pruning report of a pruned run (parent, groups or sparsity, before/after; builder.training.prune)."""
        return self.path / self.PRUNE

    @property
    def robustness(self) -> Path:
        """The adversarial robustness report (accuracy per ε, flipped examples; builder.interpret.robustness)."""
        return self.path / self.ROBUSTNESS

    # ---- exports
    @property
    def exports(self) -> Path:
        """The exports folder (created by whoever writes into it)."""
        return self.path / self.EXPORTS

    def export(self, name: str) -> Path:
        """A file of the exports folder; ``name`` is a plain file name (no folders). Raises ValueError."""
        if not name or Path(name).name != name or name in (".", ".."):
            raise ValueError(f"an export is a plain file name; received: {name!r}. Fix: drop the folders")
        return self.exports / name

    @property
    def onnx(self) -> Path:
        """The exported ONNX model."""
        return self.exports / self.ONNX

    @property
    def onnx_int8(self) -> Path:
        """The int8-quantized ONNX model."""
        return self.exports / self.ONNX_INT8

    @property
    def quantization(self) -> Path:
        """Size and test metric before/after int8 quantization (shown in the model card)."""
        return self.exports / self.QUANTIZATION

    # ---- questions and readers
    @property
    def has_checkpoint(self) -> bool:
        """Whether the last checkpoint is on disk (reading it may still fall back to the one before it,
        :func:`builder.training.checkpoint.read_resumable`)."""
        return self.checkpoint.is_file()

    @property
    def has_weights(self) -> bool:
        """Whether final weights are on disk."""
        return self.weights.is_file()

    def create(self) -> RunFolder:
        """Create the folder and its checkpoints folder; returns self."""
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        return self

    def claim(self) -> bool:
        """Create the folder of a new run, only where none of its name exists (with its checkpoints folder); False
        where one does: the id is another run's, whose files a new run must neither write nor remove."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.path.mkdir()
        except FileExistsError:
            return False
        self.create()
        return True

    def read_job_spec(self) -> dict[str, Any] | None:
        """The job spec as a dict, or None when the run has none (a CLI run) or it cannot be read."""
        return _read_json(self.job_spec)

    @staticmethod
    def job_spec_bytes(data: dict[str, Any]) -> bytes:
        """A job spec as ``job.json`` holds it: what :meth:`write_job_spec` writes and the run's recorded digest
        (``builder.runs.run_time.SPEC_DIGEST``) hashes.

        >>> RunFolder.job_spec_bytes({"a": Path("x")})
        b'{"a": "x"}'
        """
        return json.dumps(data, default=str).encode("utf-8")

    def write_job_spec(self, data: dict[str, Any]) -> str:
        """Write ``job.json`` whole or not at all; the SHA-256 of what was written (:meth:`digest`)."""
        body = self.job_spec_bytes(data)
        write_atomic(self.job_spec, body, "the run's job spec")
        return self.digest(body)

    def job_spec_digest(self) -> str | None:
        """The SHA-256 of ``job.json`` as it is now (:meth:`digest`), or None when it cannot be read."""
        data = read_file(self.job_spec, MAX_REPORT_BYTES)
        return None if data is None else self.digest(data)

    @staticmethod
    def digest(data: bytes) -> str:
        """The hex SHA-256 of ``data``."""
        return hashlib.sha256(data).hexdigest()

    def job_spec_to_run(self) -> dict[str, Any]:
        """The job spec a job is about to run with (:meth:`read_job_spec`, bounded: its job wrote this folder).

        Raises:
            RunStoreError: it is missing, unreadable, too large or not a JSON object.
        """
        data = self.read_job_spec()
        if data is None:
            raise RunStoreError(f"run {self.run_id}: its job spec ({self.job_spec.name}) is missing or unreadable. "
                                "Fix: start a new run")
        return data

    def read_weights(self) -> bytes | None:
        """The final weights file's bytes (what a Weights download delivers), or None before the run finished or
        past :data:`MAX_DOWNLOAD_BYTES` (:meth:`download_refusal` says so)."""
        return read_file(self.weights, MAX_DOWNLOAD_BYTES)

    def read_tokenizer(self) -> bytes | None:
        """A text run's ``tokenizer.json`` bytes (what its exported model's token ids come from), or None."""
        return read_file(self.tokenizer, MAX_TOKENIZER_BYTES)

    def read_onnx_int8(self) -> bytes | None:
        """The int8 ONNX file's bytes (written by ``quantize_run``), or None when the run was not quantized."""
        return read_file(self.onnx_int8, MAX_DOWNLOAD_BYTES)

    def download_refusal(self, path: Path) -> str | None:
        """Why the browser cannot download ``path`` (one of this folder's files), or None: the server reads a
        download whole first, so one past :data:`MAX_DOWNLOAD_BYTES` is refused with the command that writes it."""
        try:
            size = path.stat().st_size
        except OSError:
            return None
        if size <= MAX_DOWNLOAD_BYTES:
            return None
        return (f"{size / 2**30:.1f} GiB, over the {MAX_DOWNLOAD_BYTES // 2**30} GiB a browser download holds. Fix: "
                f"`layerlab export --run {self.run_id} -o model.safetensors` on the server writes it")

    def read_calibration(self) -> dict[str, Any] | None:
        """The calibration report as a dict (``temperature``, ``ece_before``, ``ece_after``, ...), or None when
        the run was not calibrated or the file cannot be read."""
        return _read_json(self.calibration)

    def read_latency(self) -> dict[str, Any] | None:
        """The measured latency record (:class:`builder.graph.latency.Latency` as a dict: ``per_node`` medians in
        seconds, their ``spread`` p10-p90, threads, warm-up, load), or None when none was measured."""
        return latency_record(_read_json(self.latency))

    def read_prune(self) -> dict[str, Any] | None:
        """The pruning report as a dict (:func:`prune_record`: every field of the type it has when LayerLab writes
        it), or None when the run is not a pruned one or the file cannot be read."""
        return prune_record(_read_json(self.prune))

    def read_quantization(self) -> dict[str, Any] | None:
        """The int8 quantization report as a dict (``bytes_before``, ``ratio``, ``test_after``, ...), or None when
        the run was not quantized or the file cannot be read."""
        return _read_json(self.quantization)

    def read_robustness(self) -> dict[str, Any] | None:
        """The robustness report as a dict, or None when none was measured or the file cannot be read."""
        return _read_json(self.robustness)

    def read_model_card(self) -> str | None:
        """The written model card, or None when there is none yet."""
        return read_text_file(self.model_card)


def keep_report(store: Any, report: Any, what: str) -> Path:
    """Keep a run's report (a dataclass with ``run_id`` and ``to_dict()``) as indented JSON in its run folder,
    at the file named by the folder's attribute ``what`` (``calibration``, ``robustness``, ``prune``); the
    matching ``RunFolder.read_*`` reads it back. Returns the path.

    Keeping writes into the run: the store's actor must control it (its owner; reading it, as shared mode or a
    teacher does, is not enough: a kept calibration's temperature divides the run's exported logits). A caller that
    computes the report first asks :func:`keeping` before it computes.

    Raises:
        RunStoreError: the report belongs to no run (a model trained in the session only).
        AccessDenied: a run the store's actor does not control, worded as an unknown one.
    """
    path = getattr(keeping(store, getattr(report, "run_id", None), what), what)
    return write_atomic(path, json.dumps(report.to_dict(), indent=1), f"the run's {what} report")


def keeping(store: Any, run_id: str | None, what: str = "report") -> RunFolder:
    """The folder a report of run ``run_id`` will be kept in (:func:`keep_report`), asked before the report is
    computed so that a reader who may not keep it is refused at once, not after minutes of work.

    Raises:
        RunStoreError: no run (a model trained in the session only). AccessDenied: as :func:`keep_report`.
    """
    if not run_id:
        raise RunStoreError(f"only a run's {what} can be kept; received a report of a model without a run. "
                            "Fix: pick a finished run")
    return store.folder(store.get(run_id)["id"], write=True)


MAX_REPORT_BYTES = 16 * 2**20  # a report, latency record or job spec read back (each is a few KiB)
MAX_DOWNLOAD_BYTES = 2 * 2**30  # a weights or ONNX file a page offers for download (read whole into the server)
MAX_TOKENIZER_BYTES = 64 * 2**20  # a run's tokenizer.json read back (a 50,000-token BPE one: ~2 MB)


def read_file(path: str | os.PathLike, limit: int | None = None) -> bytes | None:
    """The bytes a run's folder holds at ``path``, or None: missing, unreadable, not a regular file or over
    ``limit`` bytes (no limit when None). Read through one handle: a size read beforehand is another file's once
    the job renames a new one over it, and a named pipe there is opened without waiting for a writer, then
    refused. Every reader of a run folder's files (its JSON, model card, tokenizer, weights) reads through this."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            data = fh.read() if limit is None else fh.read(limit + 1)
        return data if limit is None or len(data) <= limit else None
    except OSError:
        return None


def read_text_file(path: str | os.PathLike, limit: int | None = None) -> str | None:
    """The UTF-8 text a run's folder holds at ``path`` (:func:`read_file`, at most ``limit`` bytes:
    :data:`MAX_REPORT_BYTES` unless given), or None, also for text that is not UTF-8."""
    data = read_file(path, MAX_REPORT_BYTES if limit is None else limit)
    try:
        return None if data is None else data.decode("utf-8")
    except ValueError:
        return None


def read_json_file(path: str | os.PathLike) -> Any:
    """The JSON value a run's folder holds at ``path``, or None: missing, unreadable, over
    :data:`MAX_REPORT_BYTES`, not JSON, or nested past the parser's depth. A job's process writes into its run
    folder, and one its model turned against it could leave a file that would stop the page of whoever reads the
    run (its owner, the teacher of its class, everyone in shared mode): read back, it is no report. Every reader of
    a run folder's JSON (reports, health, forecasts, text samples, the job spec) reads through this
    (:func:`read_text_file`)."""
    text = read_text_file(path)
    try:
        return None if text is None else json.loads(text)
    except (ValueError, RecursionError):
        return None


def _read_json(path: Path) -> dict[str, Any] | None:
    data = read_json_file(path)
    return data if isinstance(data, dict) else None


def _side(d: Any) -> dict[str, Any]:
    """One side (before, after) of a pruning report: {} when the report has none yet (a fine-tune to come)."""
    if not isinstance(d, dict) or not d:
        return {}
    out: dict[str, Any] = {k: v for k in ("params", "nonzero", "weights_bytes", "latency_batch", "latency_ms",
                                          "latency_p10_ms", "latency_p90_ms") if (v := _number(d.get(k))) is not None}
    test = d.get("test") if isinstance(d.get("test"), dict) else {}
    out["test"] = {record_text(k): _number(v) for k, v in test.items() if _number(v) is not None}
    return out


def latency_record(data: Any) -> dict[str, Any] | None:
    """A ``latency.json`` (a job wrote it) as :class:`builder.graph.latency.Latency` writes it: each field its type,
    a spread only as two finite numbers, nothing else; None without a ``per_node`` mapping.

    >>> latency_record({"per_node": {"a": 0.5, "b": "x"}, "spread": {"a": [1, 2], "b": [1]}, "threads": "2",
    ...                 "load": [0.1, 0.2], "device": ["cpu"], "evil": 1})["spread"]
    {'a': [1.0, 2.0]}
    >>> r = latency_record({"per_node": {}, "threads": True, "load": "x"}); r["threads"], r["load"], r["device"]
    (None, None, '?')
    """
    if not isinstance(data, dict) or not isinstance(data.get("per_node"), dict):
        return None

    def pair(v: Any) -> list[float] | None:
        nums = _numbers(v, 2)
        return [float(x) for x in nums] if nums is not None and len(nums) == 2 else None

    def whole(v: Any) -> int | None:
        n = _number(v)
        return n if isinstance(n, int) else None

    per = {str(k): float(x) for k, v in data["per_node"].items() if (x := _number(v)) is not None and x >= 0}
    spread = data.get("spread") if isinstance(data.get("spread"), dict) else {}
    out = {"per_node": per, "spread": {str(k): p for k, v in spread.items() if (p := pair(v)) is not None},
           "device": record_text(data.get("device")), "load": pair(data.get("load"))}
    out |= {k: whole(data.get(k)) for k in ("batch_size", "repeats", "threads", "warmup")}
    out |= {k: float(x) if (x := _number(data.get(k))) is not None else 0.0
            for k in ("total_s", "total_p10_s", "total_p90_s")}
    return out


def prune_record(d: Any) -> dict[str, Any] | None:
    """A run's ``prune.json`` with each field of the type LayerLab writes (texts clipped, numbers finite, lists of
    well-formed entries), or None when it is no report. The run's job writes the file, and its model may have
    turned against whoever reads the run: a number where a text goes stopped the Runs page of its owner's teacher.

    >>> r = prune_record({"parent_id": 7, "method": ["x"], "amount": "1", "groups": [{"members": ["a"], "before": 4,
    ...                   "after": 2}, "junk"], "before": {"params": "9", "test": {"accuracy": 0.5}}})
    >>> r["parent_id"], r["method"], r["amount"], r["groups"], r["before"]
    ('7', '?', 0, [{'members': ['a'], 'before': 4, 'after': 2}], {'test': {'accuracy': 0.5}})
    """
    if not isinstance(d, dict):
        return None
    lists = {k: d.get(k) if isinstance(d.get(k), list) else [] for k in ("groups", "left_alone")}
    return {
        **{k: record_text(d.get(k)) for k in ("parent_id", "method", "criterion", "metric")},
        "run_id": record_text(d.get("run_id"), "") or None,
        "amount": _number(d.get("amount")) or 0,
        "finetune_epochs": int(_number(d.get("finetune_epochs")) or 0),
        "groups": [{"members": [record_text(m) for m in g["members"]], "before": int(_number(g.get("before")) or 0),
                    "after": int(_number(g.get("after")) or 0)}
                   for g in lists["groups"] if isinstance(g, dict) and isinstance(g.get("members"), list)],
        "left_alone": [{"members": [record_text(m) for m in g["members"]], "reasons": [record_text(r) for r in g["reasons"]]}
                       for g in lists["left_alone"] if isinstance(g, dict) and isinstance(g.get("members"), list)
                       and isinstance(g.get("reasons"), list)],
        "sparsity": {record_text(k): _number(v) for k, v in (d.get("sparsity") if isinstance(d.get("sparsity"), dict)
                                                         else {}).items() if _number(v) is not None},
        "before": _side(d.get("before")), "after": _side(d.get("after")),
        "latency": {**lat, "verdict": record_text(lat.get("verdict"), "not measured side by side")}
        if isinstance(lat := d.get("latency"), dict) else {},
    }


ENTRY_BYTES = 4096  # what one entry (a file, a folder, a link) counts at least: a file system block and an inode


def folder_bytes(path: Path) -> int:
    """Bytes of what is under ``path`` as the storage quota counts them: each regular file's size, at least
    :data:`ENTRY_BYTES`, and :data:`ENTRY_BYTES` for each other entry (a folder, a link, not followed), so a job
    that makes empty files or folders by the thousand uses its owner's storage as one writing bytes does.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     (Path(d) / "big").write_bytes(b"x" * 10_000)
    ...     for i in range(3):
    ...         (Path(d) / f"empty{i}").touch()
    ...     (Path(d) / "sub").mkdir()
    ...     folder_bytes(Path(d)) == 10_000 + 4 * ENTRY_BYTES
    10000
    True
    """
    total = 0
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            total += max(st.st_size, ENTRY_BYTES) if stat.S_ISREG(st.st_mode) else ENTRY_BYTES
    return total


__all__ = ["RunFolder", "folder_bytes", "ENTRY_BYTES", "keep_report", "keeping", "read_json_file", "read_text_file", "read_file", "MAX_REPORT_BYTES"]
