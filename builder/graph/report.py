"""What an analysis pass finds: :class:`ShapeReport` with one :class:`NodeInfo` per node, the size
:class:`Budget` it checks against, and readers of a report (:func:`kinds_of`, :func:`human_bytes`,
:func:`human_count`). The pass itself is :mod:`builder.graph.shapes`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from builder.errors import Problem
from builder.graph.project import Edge
from builder.graph.spec import TENSOR, TOKENS, TensorType, format_shape

MAX_NODES = 5000


@dataclass
class Budget:
    """Limits that reject absurd graphs before any tensor is allocated.

    ``max_params`` bounds the values the model holds: parameters, buffers (running statistics, fixed
    position tables) and the temporaries needed to build them. ``max_activation_bytes`` bounds the peak of one
    float32 training step at ``batch_size`` with ``optimizer`` on ``device`` (:mod:`builder.graph.memory`: weights,
    gradients, optimizer state and what autograd keeps); None means the memory the device has for it
    (:func:`builder.graph.memory.device_memory`: the free memory of a GPU, half the RAM of the host). Over it,
    validation suggests the batch size that fits (a warning); only a graph that cannot train even one sample is
    refused. ``loss``: the loss a run puts on the outputs (:data:`builder.graph.memory.LOSS_VALUES`; None: none
    counted, as for a graph checked without its run's task).
    """

    max_params: int = 200_000_000
    max_activation_bytes: int | None = None
    batch_size: int = 64
    max_nodes: int = MAX_NODES
    device: str = "cpu"
    optimizer: str = "adam"
    loss: str | None = None


DEFAULT_BUDGET = Budget()


@dataclass
class NodeInfo:
    """What analysis found for one node."""

    id: str
    type: str
    params: dict = field(default_factory=dict)
    status: str = "ok"  # ok | error | upstream | unreachable
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    outputs: dict[str, TensorType] = field(default_factory=dict)
    inputs: list[TensorType] = field(default_factory=list)
    num_params: int = 0
    num_buffers: int = 0  # values in buffers (running statistics, fixed tables)
    build_values: int = 0  # temporaries while constructing the module
    work_values: int = 0  # per sample: intermediates kept for backward beyond the outputs
    cuda_work_values: int | None = None  # the same on CUDA where its kernels keep another amount
    backward_values: int = 0  # per sample: alive during its backward beyond its output's and inputs' gradients
    cuda_backward_values: int | None = None  # the same on CUDA where its kernels hold another amount
    cost_note: str = ""
    inferred: dict = field(default_factory=dict)
    cause: str | None = None  # for status "upstream": the broken node to fix first
    shares: str | None = None  # the node whose module (weights) this node calls (spec.SHARES)

    @property
    def type_out(self) -> TensorType | None:
        """The output on the first port."""
        return next(iter(self.outputs.values()), None)

    @property
    def shape(self) -> tuple[int, ...] | None:
        """Output shape without the batch dimension (first port), or None when unknown."""
        t = self.type_out
        return t.shape if t is not None else None

    @property
    def shape_str(self) -> str:
        return format_shape(self.shape)

    def to_dict(self) -> dict:
        return {"id": self.id, "type": self.type, "status": self.status, "errors": list(self.errors),
                "warnings": list(self.warnings),
                "shape": list(self.shape) if self.shape is not None else None,
                "outputs": {k: list(v.shape) for k, v in self.outputs.items()},
                "params": self.num_params, "buffers": self.num_buffers, "inferred": dict(self.inferred),
                **({"shares": self.shares} if self.shares else {})}


@dataclass
class ShapeReport:
    """The result of analysing a graph."""

    nodes: dict[str, NodeInfo]
    edges: dict[str, TensorType | None]
    problems: list[Problem]
    order: list[str]
    input_nodes: list[str]
    output_nodes: list[str]
    in_edges: dict[str, list[tuple[Edge, str]]]  # node -> [(edge, resolved target port)] in input order
    total_params: int = 0
    total_buffers: int = 0  # buffer values (running statistics, fixed tables)
    activation_bytes: int = 0  # per sample on CPU, float32: what autograd keeps plus the backward's transients

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    def summary_rows(self) -> list[dict]:
        """One row per node in topological order: id, type, output shape, parameters."""
        rows = []
        for nid in self.order:
            info = self.nodes[nid]
            rows.append({"id": nid, "type": info.type, "shape": info.shape_str, "params": info.num_params,
                         "status": info.status})
        return rows


def kinds_of(report: ShapeReport) -> dict[str, str]:
    """Output kind per node (``tensor`` or ``tokens``) for the canvas' typed ports."""
    out = {}
    for nid, info in report.nodes.items():
        t = info.type_out
        out[nid] = t.kind if t is not None else (TOKENS if info.params.get("modality") == "tokens" else TENSOR)
    return out


def human_bytes(n: float, iec: bool = False) -> str:
    """1536 -> '1.5 KB'; the next unit when rounding reaches 1024 (1,048,575 bytes read '1024.0 KB', as counts
    read '1000k' before :func:`human_count`'s rule); past an exabyte, the power of ten (an integer of any size: no
    float overflows). ``iec``: the units named KiB, MiB, ... (a full disk's message, :func:`builder.data.disk.human`).

    >>> human_bytes(1536), human_bytes(3 * 1024 ** 4), human_bytes(10 ** 40), human_bytes(1024 ** 2 - 1)
    ('1.5 KB', '3.0 TB', 'about 10^40 B', '1.0 MB')
    >>> human_bytes(3 * 1024 ** 5)
    '3.0 PB'
    """
    if abs(n) >= 1024 ** 6:
        return f"about 10^{len(str(int(abs(n)))) - 1} B"
    units = ("B", "KB", "MB", "GB", "TB", "PB", "EB")
    if iec:
        units = ("B", *(u[0] + "iB" for u in units[1:]))
    for unit in units:
        text = f"{n:.0f}" if unit == "B" else f"{n:.1f}"
        if abs(float(text)) < 1024 or unit == units[-1]:
            return f"{text} {unit}"
        n /= 1024
    return f"{n:.1f} {units[-1]}"


def human_count(n: int) -> str:
    """A count as people read it, as the canvas writes it (``frontend/src/graph.js`` ``formatCount``; both are
    tested on ``frontend/src/counts.cases.json``): three significant digits, trailing zeros dropped, the next unit
    when rounding reaches 1000. A node read "4.64k params" on the canvas beside "4.6k" in the layer table.

    >>> human_count(12345), human_count(4640), human_count(1000), human_count(999999), human_count(7)
    ('12.3k', '4.64k', '1k', '1M', '7')
    """
    n = int(n)
    if abs(n) < 1000:
        return str(n)
    units = (("k", 1e3), ("M", 1e6), ("B", 1e9))
    i = max(k for k, (_, div) in enumerate(units) if abs(n) >= div)
    while True:
        x = abs(n) / units[i][1]
        places = 2 if x < 10 else 1 if x < 100 else 0  # halves rounded up, as JavaScript's toFixed rounds them
        text = str(Decimal(x).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))
        if float(text) >= 1000 and i < len(units) - 1:  # 999,999 rounds to 1000k: 1M
            i += 1
            continue
        text = text.rstrip("0").rstrip(".") if "." in text else text
        return ("-" if n < 0 else "") + text + units[i][0]


def human_number(v: float) -> str:
    """A measured value as people read it: 4 significant digits, and from 10,000 up a whole number with thousands
    separators, no e-notation (an income of 30410.52 read "3.041e+04" beside Try it's 30410.5) below 10^15 (past
    it, ``1e+300`` rather than 301 digits); below 0.0001 as Python's ``g`` writes it (a learning rate ``1e-05``);
    zero without a sign; not finite as it is.

    >>> human_number(30410.52), human_number(0.0012346), human_number(1234.5), human_number(-2.5e7), human_number(1e-5)
    ('30,411', '0.001235', '1234', '-25,000,000', '1e-05')
    >>> human_number(9999.5), human_number(-9999.9), human_number(9999.4)  # rounded to 4 digits: 10,000
    ('10,000', '-10,000', '9999')
    >>> human_number(1e300), human_number(-0.0), human_number(123456789012345.6)
    ('1e+300', '0', '123,456,789,012,346')
    """
    v = float(v) + 0.0  # -0.0 + 0.0 is 0.0
    shown = f"{v:.4g}"
    if math.isfinite(v) and abs(v) < 1e15 and (abs(v) >= 1e4 or "e+" in shown):  # 9999.5 rounds to 1e+04 at 4
        return f"{v:,.0f}"  # digits
    return shown
