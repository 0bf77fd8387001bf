"""Errors of model import/export (part of the one hierarchy in :mod:`builder.errors`)."""

from __future__ import annotations

from dataclasses import dataclass

from builder.errors import LayerLabError


class ModelImportError(LayerLabError):
    """A model file cannot be read or imported (malformed, hostile, too large, or unsafe)."""


@dataclass(frozen=True)
class Unsupported:
    """One operator (or module) that has no LayerLab layer, with the nodes that use it and a fix."""

    op: str
    nodes: tuple[str, ...]
    fix: str

    def __str__(self) -> str:
        shown = ", ".join(self.nodes[:5]) + (f" (+{len(self.nodes) - 5} more)" if len(self.nodes) > 5 else "")
        return f"op `{self.op}` has no LayerLab layer; received: node(s) {shown}. Fix: {self.fix}"


class UnsupportedOpsError(ModelImportError):
    """Some operators do not map to LayerLab layers; ``unsupported`` lists every one (per operator)."""

    def __init__(self, unsupported: list[Unsupported]):
        self.unsupported = list(unsupported)
        lines = "; ".join(str(u) for u in self.unsupported)
        super().__init__(f"{len(self.unsupported)} unsupported operator(s), nothing was imported: {lines}")


__all__ = ["ModelImportError", "UnsupportedOpsError", "Unsupported"]
