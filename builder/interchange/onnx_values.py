"""The values the ONNX importer tracks per tensor name: folded constants, the symbolic batch size, tensors made
by LayerLab nodes, recurrent states, and what the import builds (:class:`Built`)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

MAX_FOLD_ELEMENTS = 1 << 20  # constant folding never materialises more than this many values
MAX_SHAPE_ITEMS = 1024  # a symbolic shape array (a shape computed with the batch in it) never holds more items
INTEGER_TYPES = frozenset({2, 3, 4, 5, 6, 7, 12, 13})  # ONNX uint8, int8, uint16, int16, int32, int64, uint32, uint64


@dataclass(frozen=True)
class Sym:
    """``coef`` × batch size: the only unknown in shape arithmetic."""

    coef: int = 1


@dataclass
class Const:
    value: np.ndarray
    src: str | None = None       # initializer this constant is (a view of)
    rows: int | None = None      # Slice of the initializer's first ``rows`` rows


@dataclass
class SymArr:
    items: list                  # ints and Sym


def shape_items(v: Const | SymArr) -> list:
    """The items of a constant or symbolic shape (the batch stays a :class:`Sym`).

    >>> shape_items(SymArr([Sym(1), np.int64(5)])), shape_items(Const(np.array([2, 3])))
    ([Sym(coef=1), 5], [2, 3])
    """
    return [int(x) for x in v.value.reshape(-1)] if isinstance(v, Const) else \
        [x if isinstance(x, Sym) else int(x) for x in v.items]


@dataclass(frozen=True)
class T:
    """A tensor produced by a LayerLab node (port ``port``)."""

    node: str
    port: str | None = None


@dataclass(frozen=True)
class RnnState:
    node: str
    directions: int
    layers: int
    cell: bool = False


@dataclass(frozen=True)
class RnnStack:
    """The final states of stacked recurrent layers concatenated along the layer axis (the classic exporter
    writes one ONNX LSTM/GRU/RNN per layer and concatenates their ``Y_h``)."""

    parts: tuple[RnnState, ...]


@dataclass(frozen=True)
class RnnHalf:
    node: str
    which: str  # fwd / bwd


@dataclass(frozen=True)
class ConstSeq:
    """A constant split into a sequence (``torch.split`` of a weight: in_proj into the query's and the key/value's
    rows, as SplitToSequence); SequenceAt takes one piece."""

    parts: tuple[Const, ...]


@dataclass(frozen=True)
class Pieces:
    """``torch.chunk``-sized pieces of a tensor along ``dim`` (a SplitToSequence/Split without a node)."""

    src: T
    chunks: int
    dim: int


@dataclass
class Built:
    nodes: list[dict] = field(default_factory=list)
    edges: list[dict] = field(default_factory=list)
    weights: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    folded_batchnorm: dict[str, str] = field(default_factory=dict)  # node id -> the exporter that folded one in
    mapped: dict[str, int] = field(default_factory=lambda: defaultdict(int))


__all__ = ["MAX_FOLD_ELEMENTS", "MAX_SHAPE_ITEMS", "INTEGER_TYPES", "Sym", "Const", "SymArr", "T", "RnnState", "RnnHalf", "ConstSeq", "Pieces", "Built", "shape_items"]
