"""One exception hierarchy for everything a user can get wrong.

Library code raises these instead of ``assert`` so that messages survive ``python -O`` and the UI and
CLI can show them without a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One validation finding, tied to a node or an edge.

    ``message`` is worded as rule, offending value, fix.
    """

    code: str
    message: str
    node: str | None = None
    edge: str | None = None
    severity: str = "error"

    @property
    def where(self) -> str:
        """A short location such as ``node c1`` or ``edge a->b``."""
        if self.node is not None:
            return f"node {self.node}"
        if self.edge is not None:
            return f"edge {self.edge}"
        return "graph"

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "node": self.node, "edge": self.edge,
                "severity": self.severity}


class LayerLabError(Exception):
    """Base class of every error caused by user input (files, graphs, data, settings)."""


class ProjectFormatError(LayerLabError):
    """A project file cannot be read: bad JSON, unknown format or version, wrong field types."""


class GraphError(LayerLabError):
    """A graph has problems; ``problems`` lists every one of them."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        head = "; ".join(str(p) for p in self.problems[:5])
        more = f" (+{len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__(f"{len(self.problems)} problem(s): {head}{more}")


class BudgetError(GraphError):
    """A graph is too large (parameters or activation memory) to build."""


class DatasetError(LayerLabError):
    """A dataset cannot be loaded or does not fit the task."""


class TrainingError(LayerLabError):
    """Training cannot start or had to stop (bad settings, NaN loss, missing checkpoint)."""


class ExplainError(LayerLabError):
    """An explanation method cannot run on this model or input."""


class RunStoreError(LayerLabError):
    """A run cannot be found, resumed or written."""


class StaleProjectError(RunStoreError):
    """The autosaved project changed since this session read it (another tab of the same person saved it):
    nothing was written. ``revision`` is the saved project's revision now."""

    def __init__(self, message: str, revision: int = 0) -> None:
        super().__init__(message)
        self.revision = revision


class AccessDenied(RunStoreError):
    """The actor may not do this to this resource (:func:`builder.data.access.check`); worded as "no run X of yours",
    the same as for an id that does not exist, so the answer tells nothing about other people's things."""


class DiskFullError(RunStoreError, DatasetError, TrainingError):
    """A write met a full disk (or quota): one line naming the file system, the free and the needed space
    (:mod:`builder.data.disk`). Also a RunStoreError, DatasetError and TrainingError, so the handlers of the stores,
    caches and trainer that meet it report it as their own."""


__all__ = ["Problem", "LayerLabError", "ProjectFormatError", "GraphError", "BudgetError",
           "DatasetError", "TrainingError", "ExplainError", "RunStoreError", "AccessDenied", "DiskFullError"]
