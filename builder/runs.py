"""The run store: one SQLite database (WAL mode) plus one folder per run, and the training entry points.

Layout of a workspace (default ``~/.layerlab``; ``LAYERLAB_WORKSPACE`` or the CLI's ``--workspace``
override it)::

    layerlab.db                      runs and metrics tables
    runs/<run id>/project.json       the project snapshot trained
    runs/<run id>/checkpoints/last.safetensors
    runs/<run id>/model.safetensors  final weights (best epoch when early stopping)
    runs/<run id>/model_card.md
    runs/<run id>/exports/

Every call opens its own connection, so threads and processes can write at once (SQLite serialises the
writers; WAL lets readers continue). A run left ``running`` by a killed process is marked ``interrupted``
when a store is opened, and :func:`resume_run` continues it from its last checkpoint. Example::

    >>> store = RunStore(tmp_path)                                              # doctest: +SKIP
    >>> result = run_training(load_template("mlp"), "moons", {"epochs": 5}, store=store)  # doctest: +SKIP
    >>> store.get(result.run_id)["status"]                                      # doctest: +SKIP
    'finished'
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from .checkpoint import load_weights
from .data import Dataset, adapt_graph, check_compat, load_dataset, load_saved_dataset, save_dataset
from .errors import GraphError, RunStoreError, TrainingError
from .project import Project, load_project
from .train import Callback, TrainConfig, Trainer, TrainingJob, TrainResult

ENV_WORKSPACE = "LAYERLAB_WORKSPACE"
DB_NAME = "layerlab.db"
LIVE_STATUSES = ("queued", "running", "paused")
RESUMABLE = ("interrupted", "stopped", "failed", "paused")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    name TEXT,
    status TEXT NOT NULL,
    created_at TEXT, started_at TEXT, updated_at TEXT, finished_at TEXT,
    pid INTEGER, host TEXT,
    project TEXT, dataset_name TEXT, dataset_options TEXT, dataset_info TEXT, config TEXT,
    final_metrics TEXT, test_metrics TEXT, message TEXT, parent_id TEXT,
    epochs_done INTEGER DEFAULT 0, environment TEXT
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL, kind TEXT NOT NULL, step INTEGER, epoch INTEGER, data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_by_run ON metrics (run_id, kind, step);
"""
_JSON_COLS = ("project", "dataset_options", "dataset_info", "config", "final_metrics", "test_metrics",
              "environment")


def default_workspace(flag: str | Path | None = None) -> Path:
    """The workspace folder: ``flag`` if given, else ``$LAYERLAB_WORKSPACE``, else ``~/.layerlab``."""
    if flag:
        return Path(flag).expanduser()
    env = os.environ.get(ENV_WORKSPACE)
    return Path(env).expanduser() if env else Path.home() / ".layerlab"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _new_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child that was not reaped yet is a zombie: dead for our purpose
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _dumps(obj: Any) -> str:
    def default(o):
        if isinstance(o, torch.Tensor):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        if hasattr(o, "tolist"):
            return o.tolist()
        return str(o)
    return json.dumps(obj, default=default, allow_nan=True)


class RunStore:
    """Runs and their curves in ``<workspace>/layerlab.db``; marks dead runs interrupted on open.

    Raises:
        RunStoreError: the workspace cannot be created or the database cannot be opened.
    """

    def __init__(self, workspace: str | Path | None = None, *, mark_interrupted: bool = True):
        self.workspace = default_workspace(workspace)
        try:
            (self.workspace / "runs").mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunStoreError(f"cannot create workspace {self.workspace}: {e.strerror}") from None
        self.db_path = self.workspace / DB_NAME
        with self._conn() as c:
            c.execute("PRAGMA journal_mode=WAL")
            c.executescript(_SCHEMA)
        if mark_interrupted:
            self.mark_interrupted()

    # ---- plumbing
    def _conn(self) -> sqlite3.Connection:
        try:
            c = sqlite3.connect(self.db_path, timeout=30.0, isolation_level=None)
        except sqlite3.Error as e:
            raise RunStoreError(f"cannot open run database {self.db_path}: {e}") from None
        c.row_factory = sqlite3.Row
        c.execute("PRAGMA busy_timeout=30000")
        return _Closing(c)

    def _write(self, sql: str, args: Iterable = (), many: bool = False) -> int:
        last: Exception | None = None
        for attempt in range(20):
            try:
                with self._conn() as c:
                    c.execute("BEGIN IMMEDIATE")
                    try:
                        cur = c.executemany(sql, args) if many else c.execute(sql, tuple(args))
                        c.execute("COMMIT")
                    except BaseException:
                        c.execute("ROLLBACK")
                        raise
                    return cur.rowcount
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e):
                    raise RunStoreError(f"run database error: {e}") from None
                last = e
                time.sleep(0.05 * (attempt + 1))
        raise RunStoreError(f"run database stayed locked: {last}")

    def _read(self, sql: str, args: Iterable = ()) -> list[sqlite3.Row]:
        with self._conn() as c:
            return c.execute(sql, tuple(args)).fetchall()

    def run_dir(self, run_id: str) -> Path:
        """The folder of a run (checkpoints, weights, model card, exports)."""
        return self.workspace / "runs" / run_id

    # ---- runs
    def create_run(self, project: Project | dict, dataset_name: str, dataset_options: dict | None,
                   config: TrainConfig | dict, *, name: str | None = None, dataset_info: dict | None = None,
                   parent_id: str | None = None) -> str:
        """Insert a ``queued`` run and create its folder; returns the run id."""
        project = load_project(project)
        cfg = TrainConfig.from_dict(config)
        run_id = _new_id()
        d = self.run_dir(run_id)
        (d / "checkpoints").mkdir(parents=True, exist_ok=True)
        (d / "project.json").write_text(project.to_json(), encoding="utf-8")
        env = {"torch": torch.__version__, "python": ".".join(map(str, __import__("sys").version_info[:3])),
               "platform": __import__("platform").platform(), "host": socket.gethostname()}
        self._write("INSERT INTO runs (id, name, status, created_at, updated_at, pid, host, project, dataset_name,"
                    " dataset_options, dataset_info, config, parent_id, environment) VALUES"
                    " (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, name or project.name, _now(), _now(), os.getpid(), socket.gethostname(),
                     project.to_json(indent=None), dataset_name, _dumps(dataset_options or {}),
                     _dumps(dataset_info or {}), _dumps(cfg.model_dump()), parent_id, _dumps(env)))
        return run_id

    def set_environment(self, run_id: str, **values: Any) -> None:
        """Merge values (e.g. the resolved device) into a run's environment record."""
        env = {**(self.get(run_id).get("environment") or {}), **values}
        self._write("UPDATE runs SET environment = ? WHERE id = ?", (_dumps(env), run_id))

    def update_status(self, run_id: str, status: str, message: str = "", **fields: Any) -> None:
        """Set a run's status (and message); ``running`` records this process's pid and start time."""
        sets, args = ["status = ?", "message = ?", "updated_at = ?"], [status, message, _now()]
        if status == "running":
            sets += ["pid = ?", "host = ?", "started_at = COALESCE(started_at, ?)"]
            args += [os.getpid(), socket.gethostname(), _now()]
        if status in ("finished", "stopped", "failed", "interrupted"):
            sets.append("finished_at = ?")
            args.append(_now())
        for k, v in fields.items():
            sets.append(f"{k} = ?")
            args.append(_dumps(v) if k in _JSON_COLS else v)
        if self._write(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", [*args, run_id]) == 0:
            raise RunStoreError(f"no run {run_id!r}")

    def log_metrics(self, run_id: str, events: dict | list[dict]) -> None:
        """Append step/epoch events (dicts with ``type``) to the metrics table."""
        events = [events] if isinstance(events, dict) else list(events)
        rows = [(run_id, ev.get("type", "epoch"), ev.get("step"), ev.get("epoch"),
                 _dumps({k: v for k, v in ev.items() if k not in ("type", "extras")})) for ev in events]
        if rows:
            self._write("INSERT INTO metrics (run_id, kind, step, epoch, data) VALUES (?, ?, ?, ?, ?)", rows,
                        many=True)
        epochs = [ev["epoch"] for ev in events if ev.get("type") == "epoch"]
        if epochs:
            self._write("UPDATE runs SET epochs_done = ?, updated_at = ? WHERE id = ?", (max(epochs), _now(), run_id))

    def truncate_metrics(self, run_id: str, after_step: int) -> None:
        """Drop curve points logged after ``after_step`` (used when resuming from an older checkpoint)."""
        self._write("DELETE FROM metrics WHERE run_id = ? AND step > ?", (run_id, after_step))

    def finish(self, run_id: str, status: str, final: dict | None = None, test: dict | None = None,
               message: str = "") -> None:
        """Record the end of a run (final epoch metrics, test metrics) and write its model card."""
        self.update_status(run_id, status, message, final_metrics=final or {}, test_metrics=test)
        try:
            from .modelcard import write_model_card
            write_model_card(self, run_id)
        except Exception as e:  # a model card is a convenience; never fail a run for it
            self._write("UPDATE runs SET message = ? WHERE id = ?",
                        ((message + f" (model card not written: {e})").strip(), run_id))

    def get(self, run_id: str) -> dict:
        """A run as a dict (JSON columns decoded). A unique id prefix works. Raises RunStoreError."""
        rows = self._read("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            rows = self._read("SELECT * FROM runs WHERE id LIKE ? ORDER BY id", (run_id.replace("%", "") + "%",))
            if len(rows) > 1:
                raise RunStoreError(f"run id prefix {run_id!r} is ambiguous: {', '.join(r['id'] for r in rows[:5])}")
        if not rows:
            raise RunStoreError(f"no run {run_id!r} in {self.workspace}; list them with `layerlab runs list`")
        return self._decode(rows[0])

    @staticmethod
    def _decode(row: sqlite3.Row) -> dict:
        d = dict(row)
        for k in _JSON_COLS:
            if d.get(k) is not None:
                d[k] = json.loads(d[k])
        return d

    def list_runs(self, status: str | None = None, limit: int = 100) -> list[dict]:
        """Newest first: id, name, status, dataset, timestamps, epochs done, final and test metrics."""
        sql = ("SELECT id, name, status, created_at, finished_at, dataset_name, epochs_done, final_metrics, "
               "test_metrics, message, config FROM runs")
        args: list = []
        if status:
            sql += " WHERE status = ?"
            args.append(status)
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        args.append(int(limit))
        return [self._decode(r) for r in self._read(sql, args)]

    def metrics(self, run_id: str, kind: str = "epoch") -> list[dict]:
        """A run's curve: the logged events of one kind (``epoch`` or ``step``) in order."""
        rows = self._read("SELECT data FROM metrics WHERE run_id = ? AND kind = ? ORDER BY rowid", (run_id, kind))
        return [json.loads(r["data"]) for r in rows]

    def delete_run(self, run_id: str) -> None:
        """Delete a run's rows and folder. Raises RunStoreError for a run that is still live."""
        run = self.get(run_id)
        if run["status"] in LIVE_STATUSES and _pid_alive(run["pid"]) and run["host"] == socket.gethostname():
            raise RunStoreError(f"run {run['id']} is {run['status']} in process {run['pid']}; stop it first")
        self._write("DELETE FROM metrics WHERE run_id = ?", (run["id"],))
        self._write("DELETE FROM runs WHERE id = ?", (run["id"],))
        shutil.rmtree(self.run_dir(run["id"]), ignore_errors=True)

    def mark_interrupted(self) -> list[str]:
        """Mark runs left live by a dead process (same host) as ``interrupted``; returns their ids."""
        host = socket.gethostname()
        rows = self._read(f"SELECT id, pid, host, status FROM runs WHERE status IN ({','.join('?' * 3)})",
                          LIVE_STATUSES)
        dead = [r["id"] for r in rows if r["host"] == host and not _pid_alive(r["pid"])]
        for rid in dead:
            self._write("UPDATE runs SET status = 'interrupted', message = ?, updated_at = ? WHERE id = ? AND "
                        "status IN ('queued', 'running', 'paused')",
                        ("the training process ended unexpectedly; resume with `layerlab runs resume "
                         f"{rid}`", _now(), rid))
        return dead

    def checkpoint_path(self, run_id: str) -> Path:
        """The run's last checkpoint file (may not exist)."""
        return self.run_dir(run_id) / "checkpoints" / "last.safetensors"

    def weights_path(self, run_id: str) -> Path:
        """The run's final weights file (exists once finished)."""
        return self.run_dir(run_id) / "model.safetensors"


class _Closing:
    """sqlite3 connection as a context manager that closes (the stdlib one only commits)."""

    def __init__(self, c: sqlite3.Connection):
        self.c = c

    def __enter__(self) -> sqlite3.Connection:
        return self.c

    def __exit__(self, *exc) -> None:
        self.c.close()


class RunLogger:
    """A trainer listener writing a run's events to the store (step points batched per epoch)."""

    def __init__(self, store: RunStore, run_id: str):
        self.store, self.run_id = store, run_id
        self._steps: list[dict] = []
        self._test: dict | None = None
        self._last_epoch: dict = {}

    def __call__(self, ev: dict) -> None:
        t = ev.get("type")
        if t == "step":
            self._steps.append(ev)
            if len(self._steps) >= 200:
                self._flush()
        elif t == "epoch":
            self._flush()
            self._last_epoch = {k: v for k, v in ev.items() if k not in ("type", "extras")}
            self.store.log_metrics(self.run_id, ev)
        elif t == "done":
            self._test = ev.get("test")
        elif t == "status":
            self._flush()
            st = ev["status"]
            if st in ("finished", "stopped", "failed"):
                self.store.finish(self.run_id, st, self._last_epoch, self._test, ev.get("message", ""))
            else:
                self.store.update_status(self.run_id, st, ev.get("message", ""))

    def _flush(self) -> None:
        if self._steps:
            self.store.log_metrics(self.run_id, self._steps)
            self._steps = []


# ------------------------------------------------------------------------------------ model building
def build_model(graph, seed: int = 0) -> torch.nn.Module:
    """Compile a graph into a module with seeded initialisation."""
    from .compile import compile_graph

    torch.manual_seed(seed)
    return compile_graph(graph)


def transfer_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], source_names: dict[str, str],
                     nodes: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Copy weights into ``model`` by node id and shape.

    Args:
        model: a compiled model with ``layerlab_names`` (node id -> module name).
        weights: a past run's state dict; ``source_names`` its node id -> module name map.
        nodes: node ids to initialise (default: every node present in both).

    Returns:
        ``{"loaded": [node ids], "skipped": ["node: reason"]}``.
    """
    dst_names = dict(getattr(model, "layerlab_names", {}) or {})
    sd = model.state_dict()
    wanted = list(nodes) if nodes is not None else [n for n in dst_names if n in source_names]
    loaded, skipped = [], []
    new = {}
    for nid in wanted:
        if nid not in dst_names:
            skipped.append(f"{nid}: not a node with weights in this graph")
            continue
        if nid not in source_names:
            skipped.append(f"{nid}: not in the source run")
            continue
        src, dst = source_names[nid] + ".", dst_names[nid] + "."
        pairs = [(k, dst + k[len(src):]) for k in weights if k.startswith(src)]
        if not pairs:
            continue
        bad = [d for s, d in pairs if d not in sd or sd[d].shape != weights[s].shape]
        if bad:
            skipped.append(f"{nid}: shapes differ ({', '.join(b.rsplit('.', 1)[-1] for b in bad)})")
            continue
        new.update({d: weights[s] for s, d in pairs})
        loaded.append(nid)
    if new:
        model.load_state_dict({**sd, **new})
    return {"loaded": loaded, "skipped": skipped}


def freeze_nodes(model: torch.nn.Module, nodes: Iterable[str]) -> list[str]:
    """Set ``requires_grad=False`` on the parameters of these node ids. Raises TrainingError for unknown ids."""
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


def _input_node(graph):
    return next((n for n in graph.nodes if n.type == "Input"), None)


def prepare(project, dataset: str | Dataset | None, config: TrainConfig | dict | None = None, *,
            dataset_options: dict | None = None, adapt: bool = False) -> tuple[Project, Dataset, TrainConfig]:
    """Resolve project, dataset and settings and check that the graph fits the data.

    The project's ``training`` dict supplies defaults (``dataset``, ``task`` and any TrainConfig field);
    ``config`` overrides them. With ``adapt`` the Input shape and output width are set to fit the dataset.

    Raises:
        GraphError: the graph does not fit the dataset (each problem names the node and the fix).
        DatasetError, TrainingError: bad dataset or settings.
    """
    project = load_project(project).model_copy(deep=True)
    tr = dict(project.training or {})
    fields = set(TrainConfig.model_fields)
    base = {k: v for k, v in tr.items() if k in fields}
    cfg = TrainConfig.from_dict({**base, **(config.model_dump(exclude_unset=True) if isinstance(config, TrainConfig)
                                             else dict(config or {}))})
    if dataset is None:
        dataset = tr.get("dataset") or (project.dataset or {}).get("name")
        if not dataset:
            raise TrainingError("no dataset given and the project names none; pass a dataset name")
    if isinstance(dataset, str):
        opts = dict(dataset_options or {})
        if "task" in tr and "task" not in opts:
            opts["task"] = tr["task"]
        opts.setdefault("seed", cfg.seed)
        ds = load_dataset(dataset, **opts)
    else:
        ds = dataset
    inp = _input_node(project.graph)
    numel = int(math.prod(ds.info.input_shape))
    if (inp is not None and len(ds.info.input_shape) > 1 and list(inp.params.get("shape") or []) == [numel]
            and ds.info.input_dtype == "float32"):
        ds = ds.flattened()  # a vector Input of the flattened size (MLP autoencoder on digits)
    if adapt:
        project.graph = adapt_graph(project.graph, ds.info)
    problems = check_compat(project.graph, ds.info)
    if problems:
        raise GraphError(problems)
    return project, ds, cfg


def _reloadable(ds: Dataset) -> bool:
    """Whether ``load_dataset(*ds.info.reload_args())`` can load this dataset again."""
    from .data import _REGISTRY

    name, opts = ds.info.reload_args()
    if name in ("csv", "image_folder"):
        return bool(opts.get("path"))
    return name in _REGISTRY


def _load_init(store: RunStore | None, model: torch.nn.Module, cfg: TrainConfig) -> dict | None:
    report = None
    if cfg.init_from:
        if store is None:
            raise TrainingError("init_from needs a run store to find the source run")
        src = store.get(cfg.init_from)
        weights, md = load_weights(store.weights_path(src["id"]))
        names = json.loads(md.get("layerlab_names", "{}"))
        report = transfer_weights(model, weights, names, cfg.init_nodes)
        if not report["loaded"]:
            raise TrainingError(f"no weights of run {src['id']} fit this graph: {'; '.join(report['skipped'][:5])}")
    if cfg.freeze:
        freeze_nodes(model, cfg.freeze)
    return report


def run_training(project, dataset: str | Dataset | None = None, config: TrainConfig | dict | None = None,
                 store: RunStore | None = None, callbacks: Iterable[Callback] = (), *,
                 dataset_options: dict | None = None, on_event: Callable[[dict], None] | None = None,
                 background: bool = False, adapt: bool = False, dist: Any = None,
                 name: str | None = None) -> TrainResult | TrainingJob:
    """Train a project on a dataset: the single entry point of the CLI and the UI.

    Args:
        project: a Project, a path, JSON or a dict.
        dataset: a registered dataset name or a loaded :class:`Dataset` (default: the project's).
        config: TrainConfig or dict overriding the project's ``training`` settings.
        store: a :class:`RunStore`; when given the run, its curves, checkpoints and model card are kept.
        callbacks: :class:`Callback` instances.
        on_event: an extra listener for every event.
        background: return a started :class:`TrainingJob` instead of training synchronously.
        adapt: adapt the graph's Input shape and output width to the dataset.
        dist: a :class:`builder.distributed.DistContext` (torchrun); only rank 0 writes to the store.

    Returns:
        A :class:`TrainResult` (``run_id`` set when a store is used), or a started TrainingJob.

    Raises:
        GraphError, DatasetError, TrainingError (a failed run is recorded as ``failed`` first).
    """
    project, ds, cfg = prepare(project, dataset, config, dataset_options=dataset_options, adapt=adapt)
    main = dist is None or getattr(dist, "rank", 0) == 0
    run_id, run_dir, listeners = None, None, []
    if store is not None and main:
        src_name, src_opts = ds.info.reload_args()
        run_id = store.create_run(project, src_name, src_opts, cfg, name=name, dataset_info=ds.info.to_dict())
        run_dir = store.run_dir(run_id)
        if not _reloadable(ds):  # an upload: keep the data so the run can be resumed
            save_dataset(ds, run_dir / "dataset.safetensors")
        listeners.append(RunLogger(store, run_id))
    if on_event is not None and main:
        listeners.append(on_event)
    try:
        model = build_model(project.graph, cfg.seed)
        _load_init(store, model, cfg)
        trainer = Trainer(model, ds, cfg, callbacks, run_dir, on_event=listeners, dist=dist)
    except Exception as e:
        if run_id is not None:
            store.finish(run_id, "failed", message=str(e))
        raise
    trainer.run_id = run_id
    if run_id is not None:
        store.set_environment(run_id, device=str(trainer.device),
                              world_size=getattr(dist, "world_size", 1) if dist is not None else 1)
    return _launch(trainer, background, run_id)


def _launch(trainer: Trainer, background: bool, run_id: str | None):
    if background:
        job = TrainingJob(trainer).start()
        job.run_id = run_id
        return job
    result = trainer.fit()
    result.run_id = run_id
    return result


def resume_run(run_id: str, store: RunStore, callbacks: Iterable[Callback] = (), *,
               on_event: Callable[[dict], None] | None = None, background: bool = False,
               overrides: dict | None = None, dist: Any = None) -> TrainResult | TrainingJob:
    """Continue an interrupted, stopped, paused or failed run from its last checkpoint.

    ``overrides`` may change settings such as ``epochs`` or ``lr`` (e.g. after a NaN loss).

    Raises:
        RunStoreError: unknown run, a run still live or finished, or no checkpoint.
    """
    store.mark_interrupted()
    run = store.get(run_id)
    run_id = run["id"]
    if run["status"] in LIVE_STATUSES:  # mark_interrupted left it: its process is alive
        raise RunStoreError(f"run {run_id} is {run['status']} in process {run['pid']}; resume or stop it there "
                            "(it cannot run twice)")
    if run["status"] == "finished" and not (overrides or {}).get("epochs"):
        raise RunStoreError(f"run {run_id} already finished; pass a larger epochs to train further")
    ckpt = store.checkpoint_path(run_id)
    if not ckpt.is_file():
        raise RunStoreError(f"run {run_id} has no checkpoint to resume from ({ckpt})")
    cfg = TrainConfig.from_dict(run["config"], **(overrides or {}))
    project = load_project(run["project"])
    snapshot = store.run_dir(run_id) / "dataset.safetensors"
    if snapshot.is_file():
        ds = load_saved_dataset(snapshot)
    else:
        ds = load_dataset(run["dataset_name"], **dict(run["dataset_options"] or {}))
    inp = _input_node(project.graph)
    if inp is not None and list(inp.params.get("shape") or []) != list(ds.info.input_shape) and \
            list(inp.params.get("shape") or []) == [int(math.prod(ds.info.input_shape))]:
        ds = ds.flattened()
    main = dist is None or getattr(dist, "rank", 0) == 0
    listeners: list = [RunLogger(store, run_id)] if main else []
    if on_event is not None and main:
        listeners.append(on_event)
    if overrides and main:
        store.update_status(run_id, run["status"], "settings changed on resume", config=cfg.model_dump())
    model = build_model(project.graph, cfg.seed)
    if cfg.freeze:
        freeze_nodes(model, cfg.freeze)
    trainer = Trainer(model, ds, cfg, callbacks, store.run_dir(run_id), on_event=listeners,
                      resume_from=ckpt, dist=dist)
    from .checkpoint import read_checkpoint
    _, meta = read_checkpoint(ckpt)
    if main:
        store.truncate_metrics(run_id, int(meta.get("state", {}).get("global_step", 0)))
    trainer.run_id = run_id
    return _launch(trainer, background, run_id)


__all__ = ["RunStore", "RunLogger", "run_training", "resume_run", "prepare", "build_model", "transfer_weights",
           "freeze_nodes", "default_workspace", "ENV_WORKSPACE"]
