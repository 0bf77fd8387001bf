"""A run as the store returns it: a typed record, its project, settings and dataset parsed once.

MLflow's store returns ``Run(info, data)``, never a row dict; so does ours (:meth:`RunStore.get`,
:meth:`RunStore.list_runs`). :attr:`Run.info` holds who, what and when (id, owner, status as a
:class:`~builder.training.run_status.RunStatus`, times, class); :attr:`Run.project`, :attr:`Run.config` and
:attr:`Run.dataset` are parsed on first use and kept, so every reader of one record shares one parse: take the
record and hand it on instead of re-reading ``run["project"]``. The stored columns stay readable as a mapping
(``run["status"]``, ``run.get("config")``: the decoded JSON, as the row dict of earlier releases gave it).
Example::

    >>> run = Run({"id": "20261122-000000-abcdef", "status": "finished", "owner": "user:ann",
    ...            "project": {"graph": {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [4]}}],
    ...                                  "edges": []}}, "config": {"epochs": 3}})
    >>> run.status is RunStatus.FINISHED, run.info.owner, run["config"]
    (True, 'user:ann', {'epochs': 3})
    >>> run.project.graph.nodes[0].type, run.project is run.project, run.config.epochs
    ('Input', True, 3)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from builder.data.access import Actor, owner_of
from builder.errors import LayerLabError, RunStoreError
from builder.graph.project import load_project
from builder.graph.shapes import infer_shapes
from builder.runs.owners import label
from builder.runs.run_time import stamp
from builder.training.config import TrainConfig
from builder.training.control import STOPPED_BY_REQUEST
from builder.training.run_status import RunStatus

if TYPE_CHECKING:  # parsing settings or a dataset source is paid for by the reader that asks
    from builder.data.sources import DatasetSource
    from builder.graph.project import Project


STOPPED_BY = "stopped_by"  # the tag naming who stopped a run that is not theirs (a teacher, an admin)


def shown_time(ts: Any, *, seconds: bool = True, missing: str = "-") -> str:
    """A stored timestamp as people read it: to the second (or the minute), in UTC (``missing`` when there is
    none; text that is not a timestamp as it is).

    >>> shown_time("2026-11-24T21:14:26.123456+00:00"), shown_time(None)
    ('2026-11-24 21:14:26 UTC', '-')
    >>> shown_time("2026-11-24T21:14:26+00:00", seconds=False)
    '2026-11-24 21:14 UTC'
    """
    if not ts:
        return missing
    t = stamp(ts)
    if t is None:
        return str(ts)
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def stopped_tags(workspace: str | Path, run: Run, who: Actor) -> dict:
    """``run``'s tags once ``who`` stops it: who that is when not its owner, as the owner reads it (``your
    teacher <pseudonym>``, ``an admin of this server``; a pseudonym or chosen name, never an owner id); the
    owner's own stop clears an earlier one (:attr:`Run.stopped_by`)."""
    tags = {k: v for k, v in run.tags.items() if k != STOPPED_BY}
    if who.owner != owner_of(run) and not who.system:
        teacher = run.info.class_id and run.info.class_id in who.teaching
        tags[STOPPED_BY] = f"your teacher {label(workspace, who.owner)}" if teacher else "an admin of this server"
    return tags


@dataclass(frozen=True)
class RunInfo:
    """Who, what and when of a run (MLflow's ``RunInfo``): every column that is not its data."""

    id: str
    name: str | None
    owner: str
    status: RunStatus
    created_at: str | None = None
    started_at: str | None = None
    updated_at: str | None = None
    finished_at: str | None = None
    queued_at: float | None = None
    epochs_done: int = 0
    class_id: str | None = None
    parent_id: str | None = None
    pid: int | None = None
    host: str | None = None
    message: str = ""
    graph_hash: str | None = None
    control: str | None = None


def _status(value: Any) -> RunStatus:
    try:
        return RunStatus(value)
    except ValueError:
        raise RunStoreError(f"unknown run status; received: {str(value)[:40]!r}. Fix: the run database was "
                            f"changed by hand; set one of {', '.join(s.value for s in RunStatus)}") from None


@dataclass(frozen=True, eq=False)  # equality is the mapping's: a record equals a dict of the same columns
class Run(Mapping[str, Any]):
    """One run of the store: :attr:`info`, and the data parsed once on first use (:attr:`project`,
    :attr:`config`, :attr:`dataset`). Read-only: the parsed project is shared by every reader of this record
    (``run.project.model_copy(deep=True)`` before changing it)."""

    row: Mapping[str, Any]  # the stored columns, JSON decoded (a read-only view)

    def __post_init__(self) -> None:
        object.__setattr__(self, "row", MappingProxyType(dict(self.row)))

    @classmethod
    def of(cls, run: Run | Mapping[str, Any]) -> Run:
        """Coerce at the door: a record stays itself (and keeps what it parsed); a row dict becomes a record.

        >>> r = Run.of({"id": "x", "status": "queued"}); Run.of(r) is r
        True
        """
        return run if isinstance(run, Run) else cls(run)

    # ---- the mapping of stored columns (what the row dict of earlier releases answered)
    def __getitem__(self, key: str) -> Any:
        return self.row[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.row)

    def __len__(self) -> int:
        return len(self.row)

    # ---- info
    @cached_property
    def info(self) -> RunInfo:
        """Who, what and when, typed (RunStoreError for a status no LayerLab writes)."""
        r = self.row
        return RunInfo(id=str(r.get("id") or ""), name=r.get("name"), owner=owner_of(r), status=_status(r.get("status")),
                       created_at=r.get("created_at"), started_at=r.get("started_at"), updated_at=r.get("updated_at"),
                       finished_at=r.get("finished_at"), queued_at=r.get("queued_at"),
                       epochs_done=int(r.get("epochs_done") or 0), class_id=r.get("class_id"),
                       parent_id=r.get("parent_id"), pid=r.get("pid"), host=r.get("host"),
                       message=str(r.get("message") or ""), graph_hash=r.get("graph_hash"), control=r.get("control"))

    @property
    def id(self) -> str:
        """The run id (``info.id``)."""
        return self.info.id

    @property
    def status(self) -> RunStatus:
        """The status (``info.status``)."""
        return self.info.status

    @property
    def owner(self) -> str:
        """The owner (``info.owner``; ``local`` when none is recorded)."""
        return self.info.owner

    # ---- data, parsed once
    @cached_property
    def project(self) -> Project:
        """The project the run trained, parsed on first use (ProjectFormatError for a damaged record;
        RunStoreError for a listed record, which carries no project: read it with ``RunStore.get``)."""

        if self.row.get("project") is None:
            raise RunStoreError(f"run {self.row.get('id')} was read without its project; received: a listed "
                                "record. Fix: read the run with RunStore.get(run_id)")
        return load_project(self.row["project"])

    @cached_property
    def config(self) -> TrainConfig:
        """The training settings, validated on first use (TrainingError for settings no LayerLab accepts)."""

        return TrainConfig.from_dict(self.row.get("config") or {}, stored=True)  # read, not trained from

    @cached_property
    def dataset(self) -> DatasetSource | None:
        """The dataset source as recorded (None when the run names none); an upload resolves as its owner's
        with :func:`builder.runs.summary.run_source`."""
        from builder.data.sources import DatasetSource  # lazy: heavy (numpy)

        return DatasetSource.from_run(self.row)

    @cached_property
    def params(self) -> int | None:
        """The parameter count: as the pipeline recorded it from its graph analysis (``environment.params``),
        else from one analysis of :attr:`project` (older runs); None when the project cannot be read."""
        recorded = self.environment.get("params")
        if isinstance(recorded, int) and not isinstance(recorded, bool):
            return recorded

        try:
            return infer_shapes(self.project.graph).total_params
        except (LayerLabError, ValueError, TypeError, KeyError):
            return None

    def _json(self, key: str) -> dict:
        value = self.row.get(key)
        return value if isinstance(value, dict) else {}

    @property
    def tags(self) -> dict:
        """The run's tags ({} when none)."""
        return self._json("tags")

    @property
    def stopped_by(self) -> str | None:
        """Who stopped this run when it was not its owner, as the run's owner reads it (``your teacher
        anon-k7x2qd4mzt``; recorded by :func:`builder.jobs.queue.request`), for a stopped run only; else None.

        >>> Run({"id": "r", "status": "stopped", "tags": {STOPPED_BY: "your teacher anon-k7x2qd4mzt"}}).stopped_by
        'your teacher anon-k7x2qd4mzt'
        >>> Run({"id": "r", "status": "finished", "tags": {STOPPED_BY: "an admin"}}).stopped_by is None
        True
        """
        who = self.tags.get(STOPPED_BY)
        return str(who) if who and self.status is RunStatus.STOPPED else None

    @property
    def shown_message(self) -> str:
        """Its message as a page shows it: the trainer's "stopped by request" names who stopped it when that was
        not its owner (:attr:`stopped_by`: a teacher, an admin, a quota).

        >>> Run({"id": "r", "status": "stopped", "tags": {STOPPED_BY: "your teacher anon-k7x2qd4mzt"},
        ...      "message": "stopped by request; resume to continue from the checkpoint"}).shown_message
        'stopped by your teacher anon-k7x2qd4mzt; resume to continue from the checkpoint'
        """
        by = self.stopped_by
        return self.info.message.replace(STOPPED_BY_REQUEST, f"stopped by {by}", 1) if by else self.info.message

    @property
    def environment(self) -> dict:
        """Where it trained and its size (device, precision, params, macs; {} when none)."""
        return self._json("environment")

    @property
    def dataset_info(self) -> dict:
        """What the dataset was when the run trained (task, shapes, sizes, notes; {} when none)."""
        return self._json("dataset_info")

    @property
    def final_metrics(self) -> dict:
        """The last epoch's metrics ({} when none)."""
        return self._json("final_metrics")

    @property
    def test_metrics(self) -> dict:
        """The test split's metrics ({} when not evaluated)."""
        return self._json("test_metrics")

    def with_project(self, project: Project) -> Run:
        """This record with ``project`` as its parsed project: the caller that stored that very project hands it
        on (a pipeline pass parses it once, not again when the run is read back)."""
        out = Run(self.row)
        out.__dict__["project"] = project
        return out


__all__ = ["Run", "RunInfo", "shown_time"]
