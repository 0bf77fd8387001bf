"""Channel groups of a graph for structured pruning: who produces, follows and consumes each channel (no torch).

Removing output channels of a Conv1d/Conv2d/Linear node (a *producer*) changes every node its channels reach:
BatchNorm follows the channels (its statistics are sliced), activations, dropout and pooling pass them on, the
next Conv/Linear (a *consumer*) loses the matching input channels, and a Flatten before a Linear turns each
channel into a block of ``H*W`` consecutive columns. :func:`channel_plan` walks the graph once in topological
order (the shape analysis gives the order, the inputs and the shapes) and records, per tensor, its channel
layout: a list of segments ``(group, size)`` along one dimension, and how many positions each channel spans
after a Flatten.

Producers whose channels meet in an ``Add`` or ``Multiply`` form one *group*: the residual sum needs the same
channels in all its inputs, so they are pruned identically (the importance is summed over the group) or not at
all. A ``Concat`` along the channel dimension joins the layouts (each input keeps its own group). A group is
*blocked*, and left alone with the reason recorded, when its channels reach the model's output, a node that
mixes or reshapes channels (LayerNorm, GroupNorm, attention, RNNs, Reshape, Permute, Mean, a Softmax over the
channels, ...), an Add with an input that cannot be pruned, or a broadcasting merge.

Example (the CNN template: both convolutions and the hidden Linear can shrink, the head is the output)::

    >>> from builder.graph.templates import load_template
    >>> plan = channel_plan(load_template("cnn").graph)
    >>> sorted(g.members[0] for g in plan.prunable())
    ['conv1', 'conv2', 'fc']
    >>> plan.groups["head"].blocked
    ['head: its output is the model output']
    >>> plan.consumers["fc"].mult  # Flatten -> fc: each conv2 channel is a block of 2*2 columns
    4
    >>> g = shrink_graph(load_template("cnn").graph, plan, {"conv1": 8})
    >>> g.node("conv1").params["out_channels"]
    8
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from builder.errors import GraphError, LayerLabError
from builder.graph.project import Graph, as_graph
from builder.graph.report import ShapeReport
from builder.graph.shapes import infer_shapes

__all__ = ["PRODUCERS", "Layout", "Group", "ChannelPlan", "channel_plan", "shrink_graph", "out_param"]

#: layer types whose output channels can be removed -> the parameter holding their count
PRODUCERS = {"Conv1d": "out_channels", "Conv2d": "out_channels", "Linear": "out_features"}
#: consumers: the weight dimension that holds the input channels
CONSUMER_DIM = {"Conv1d": 1, "Conv2d": 1, "Linear": 1, "ConvTranspose2d": 0}
_ELEMENTWISE = {"ReLU", "LeakyReLU", "ELU", "GELU", "SiLU", "Sigmoid", "Tanh", "Dropout", "Dropout2d", "Identity"}
_FOLLOWERS = {"BatchNorm1d", "BatchNorm2d"}  # per-channel parameters and statistics, sliced like the channels
_POOLS = {"MaxPool1d", "AvgPool1d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d"}
_MERGES = {"Add", "Multiply"}


@dataclass(frozen=True)
class Layout:
    """Channels of one tensor along batch-free dimension ``dim``: segments ``(group, size)`` in order (group
    None: channels that are never removed), each channel spanning ``mult`` consecutive positions (a Flatten)."""

    segs: tuple[tuple[str | None, int], ...]
    dim: int
    mult: int = 1

    @property
    def groups(self) -> list[str]:
        """The groups of the segments (not None)."""
        return [g for g, _ in self.segs if g is not None]


@dataclass
class Group:
    """Producers whose output channels are removed together; ``blocked``: why they are left alone (empty: free)."""

    members: list[str]
    size: int
    blocked: list[str] = field(default_factory=list)


@dataclass
class ChannelPlan:
    """Where each group's channels go: ``producers`` node -> group, ``consumers`` node -> the layout of its
    input channels, ``followers`` node (BatchNorm) -> the layout of its channels; ``groups`` by group id."""

    groups: dict[str, Group]
    producers: dict[str, str]
    consumers: dict[str, Layout]
    followers: dict[str, Layout]

    def prunable(self) -> list[Group]:
        """The groups that are not blocked, in graph order."""
        return [g for g in self.groups.values() if not g.blocked]

    def group_of(self, node: str) -> Group:
        """The group of a producer node. Raises LayerLabError for a node that is not a producer."""
        if node not in self.producers:
            raise LayerLabError(f"structured pruning removes output channels of {', '.join(sorted(PRODUCERS))} "
                                f"nodes; received: {node!r}. Fix: name one of {', '.join(self.producers) or '(none)'}")
        return self.groups[self.producers[node]]


class _Union:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.blocked: dict[str, list[str]] = {}

    def add(self, g: str) -> None:
        self.parent.setdefault(g, g)

    def find(self, g: str) -> str:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra

    def block(self, groups: list[str], reason: str) -> None:
        for g in groups:
            reasons = self.blocked.setdefault(g, [])
            if reason not in reasons:
                reasons.append(reason)


def _dim(d: int, rank: int) -> int | None:
    """A torch dimension (0 is the batch, negatives from the end) as a batch-free index, or None."""
    d = d + rank + 1 if d < 0 else d
    return d - 1 if 1 <= d <= rank else None


def out_param(node_type: str) -> str:
    """The parameter holding a producer's output size (``out_channels`` / ``out_features``)."""
    return PRODUCERS[node_type]


def channel_plan(graph, report: ShapeReport | None = None) -> ChannelPlan:
    """Channel groups, consumers and followers of ``graph`` (a Graph, Project, dict or path).

    Raises:
        GraphError: the graph has problems (prune a graph that trains).
    """
    graph = as_graph(graph)
    report = report or infer_shapes(graph)
    if not report.ok:
        raise GraphError([p for p in report.problems if p.severity == "error"])
    uf = _Union()
    state: dict[str, Layout] = {}
    consumers: dict[str, Layout] = {}
    followers: dict[str, Layout] = {}
    producers: list[str] = []
    tied = {nid: info.shares for nid, info in report.nodes.items() if info.shares}
    tied.update({root: nid for nid, root in list(tied.items())})  # both ends of every tie
    for nid in report.order:
        info = report.nodes[nid]
        ins = [state.get(e.source) for e, _ in report.in_edges.get(nid, [])]
        out = _step(nid, info, ins, uf, consumers, followers)
        if info.type in PRODUCERS:
            producers.append(nid)
            uf.add(nid)
            state[nid] = Layout(((nid, int(info.shape[-1] if info.type == "Linear" else info.shape[0])),),
                                len(info.shape) - 1 if info.type == "Linear" else 0)
        elif out is not None:
            state[nid] = out
        if nid in tied:  # one module used twice: slicing it for one use would break the other
            why = f"{nid}: its weights are shared with {tied[nid]} (tied)"
            uf.block([g for x in ins if x is not None for g in x.groups] + ([nid] if nid in uf.parent else []), why)
    for nid in report.output_nodes:
        if nid in state:
            uf.block(state[nid].groups, f"{nid}: its output is the model output")
    name: dict[str, str] = {}  # union root -> the group's id: its first producer in graph order
    groups: dict[str, Group] = {}
    for p in producers:
        gid = name.setdefault(uf.find(p), p)
        g = groups.setdefault(gid, Group([], int(state[p].segs[0][1])))
        g.members.append(p)
        for why in uf.blocked.get(p, []):
            if why not in g.blocked:
                g.blocked.append(why)

    def resolve(lay: Layout) -> Layout:
        return Layout(tuple((None if g is None else name[uf.find(g)], n) for g, n in lay.segs), lay.dim, lay.mult)

    return ChannelPlan(groups, {p: name[uf.find(p)] for p in producers},
                       {k: resolve(v) for k, v in consumers.items()}, {k: resolve(v) for k, v in followers.items()})


def _step(nid: str, info, ins: list[Layout | None], uf: _Union, consumers: dict, followers: dict) -> Layout | None:
    """The layout of ``nid``'s output from its inputs' layouts; records consumers and followers; blocks groups
    whose channels this node cannot carry."""
    t, rank = info.type, len(info.inputs[0].shape) if info.inputs and info.inputs[0].shape is not None else 0
    lay = ins[0] if ins else None
    if all(x is None for x in ins):
        return None
    present = [g for x in ins if x is not None for g in x.groups]

    def block(why: str) -> None:
        uf.block(present, f"{nid} ({t}): {why}")

    if t == "Output":
        block("its output is the model output")
        return None
    if t in CONSUMER_DIM:
        want = rank - 1 if t == "Linear" else 0
        if lay.dim != want or (t != "Linear" and lay.mult != 1):
            block("its input channels are not along the dimension it reads")
        else:
            consumers[nid] = lay
        return None
    if t in _ELEMENTWISE:
        return lay
    if t in ("Softmax", "LogSoftmax"):
        if _dim(int(info.params.get("dim", -1)), rank) == lay.dim:
            block("normalises across the channels")
            return None
        return lay
    if t in _FOLLOWERS or t in _POOLS:
        if lay.dim != 0 or (t in _POOLS and (lay.mult != 1 or rank < 2)):
            block("its channels are not the first dimension")
            return None
        if t in _FOLLOWERS:
            followers[nid] = lay
        return lay
    if t == "Flatten":
        start, end = (_dim(int(info.params.get(k, d)), rank) for k, d in (("start_dim", 1), ("end_dim", -1)))
        if start is None or end is None or start >= end or start > lay.dim:
            return lay  # a no-op, or only dimensions after the channels are joined
        if end < lay.dim:  # dimensions before the channels are joined: the channels move left
            return Layout(lay.segs, lay.dim - (end - start), lay.mult)
        if start == lay.dim == 0 and end == rank - 1 and lay.mult == 1:
            return Layout(lay.segs, 0, math.prod(info.inputs[0].shape[1:]))
        block("joins the channels with other dimensions")
        return None
    if t in _MERGES:
        shapes = {tuple(x.shape) for x in info.inputs}
        if len(shapes) != 1 or any(x is None for x in ins) or len({(x.dim, x.mult) for x in ins}) != 1 or \
                len({tuple(n for _, n in x.segs) for x in ins}) != 1:
            block("its inputs must lose the same channels, and not every input can (or shapes broadcast)")
            return None
        for x in ins[1:]:
            for (a, _), (b, _) in zip(lay.segs, x.segs):
                if (a is None) != (b is None):
                    uf.block([g for g in (a, b) if g is not None], f"{nid} ({t}): added to channels that stay")
                elif a is not None:
                    uf.union(a, b)
        return lay
    if t == "Concat":
        d = _dim(int(info.params.get("dim", 1)), rank)
        if any(x is not None and (x.dim != d or x.mult != 1) for x in ins):
            block("joins along another dimension than the channels")
            return None
        segs = []
        for x, ti in zip(ins, info.inputs):
            segs.extend(x.segs if x is not None else ((None, int(ti.shape[d])),))
        return Layout(tuple(segs), d)
    block("mixes or reshapes channels")
    return None


def shrink_graph(graph, plan: ChannelPlan, keep: dict[str, int]) -> Graph:
    """A copy of ``graph`` where every producer of group ``g`` has ``keep[g]`` output channels/units.

    Raises:
        LayerLabError: a group that is blocked or unknown, or a count outside 1..size.
    """
    graph = as_graph(graph).model_copy(deep=True)
    for gid, n in keep.items():
        group = plan.groups.get(gid)
        if group is None or group.blocked:
            raise LayerLabError(f"only free channel groups can shrink; received: {gid!r} "
                                f"({'; '.join(group.blocked) if group else 'no such group'}). Fix: pick another node")
        if not 1 <= int(n) <= group.size:
            raise LayerLabError(f"a group keeps 1..{group.size} channels; received: {n}. Fix: a smaller amount")
        for m in group.members:
            node = graph.node(m)
            node.params = {**node.params, out_param(node.type): int(n)}
    return graph
