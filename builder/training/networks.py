"""One network of a project with a drawn objective, cut out as a project of its own: a GAN's generator (input: the
noise), its discriminator, a VAE's model without its loss terms, or an export-only part (``training.parts``: a
VAE's encoder, its decoder with the latent code as input). The graph surgery the exporters
(:mod:`builder.interchange.network_export`: ``layerlab export --run RUN --network NAME``, the Runs page's Network
choice) and the Explain page (:func:`explain_view`) build on.

The network's graph (:func:`network_project`) holds the network's nodes except its loss nodes and Targets; every
node outside the network that feeds it becomes an Input of that node's id and shape (a ``Noise`` node: the noise
of its size). Its outputs are the kept nodes nothing kept consumes, and ``ID_out`` for each kept node a loss term
reads that also feeds the network (a VAE's ``mu`` and ``logvar``). Node ids are unchanged, so the run's weights
fit after renaming state-dict prefixes (:func:`network_state`): the ``.py`` and ONNX exporters then run as for
any project.

Example::

    >>> from builder import load_template
    >>> gan = load_template("gan")
    >>> network_names(gan)
    ['generator', 'discriminator']
    >>> g = network_project(gan, "generator").graph
    >>> [n.id for n in g.nodes if n.type == "Input"], g.nodes[0].params["shape"]
    (['z'], [32])
"""

from __future__ import annotations

import os
from typing import Any

import torch

from builder.errors import LayerLabError
from builder.graph.compile import compile_graph, module_names
from builder.graph.layers.objective import LOSS_TYPES
from builder.graph.project import Edge, Graph, Node, Project, load_project
from builder.graph.registry import TOKENS
from builder.graph.shapes import infer_shapes
from builder.training.objectives import has_objective, resolve_objective, training_graph
from builder.training.weights import read_weights

#: Node types a network export leaves out: they only exist while training (targets and loss terms).
TRAINING_ONLY = (*LOSS_TYPES, "Target")


class NetworkError(LayerLabError):
    """A network that a project does not have, or one that cannot stand on its own."""


def as_project(project: Any) -> Project:
    return project if isinstance(project, Project) else load_project(project)


def _groups(project: Project) -> dict[str, list[str]]:
    """The node groups a network export may name: the objective's networks (``training.networks``, else the one
    ``model``), then the project's export-only ``training.parts`` (groups that are not trained on their own, e.g.
    a VAE's ``encoder`` and ``decoder`` inside its one ``model``)."""
    groups = dict(resolve_objective(project).networks)
    raw = (project.training or {}).get("parts") or {}
    ids = {n.id for n in project.graph.nodes}
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, list) for k, v in raw.items()):
        raise NetworkError(f"training.parts maps part names to lists of node ids; received: {str(raw)[:80]}. Fix: "
                           "e.g. {\"encoder\": [\"enc1\", \"mu\"]}")
    for name, members in raw.items():
        unknown = [str(m)[:40] for m in members if m not in ids]
        if name in groups or unknown or not members:
            raise NetworkError(f"a part names a new group of this graph's nodes; received: part {name[:40]!r} with "
                               + (f"unknown nodes {unknown[:3]}" if unknown else "the name of a network" if
                                  name in groups else "no nodes")
                               + ". Fix: list existing node ids under a name no network has")
        groups[name] = [str(m) for m in members]
    return groups


def network_names(project: Any) -> list[str]:
    """The networks of a project with a drawn objective (``training.networks``, else the one ``model``) and its
    export-only parts (``training.parts``); ``[]`` for a project without loss nodes (its whole graph is its one
    model)."""
    project = as_project(project)
    if not has_objective(project):
        return []
    return list(_groups(project))


def _check_name(project: Project, network: str) -> list[str]:
    names = network_names(project)
    if not names:
        raise NetworkError(f"--network applies to a project with a drawn objective (loss nodes); received: "
                           f"{str(network)[:60]!r} for a project without one. Fix: export without --network (the "
                           "whole graph is the model)")
    if network not in names:
        raise NetworkError(f"the network must be one of this project's networks ({', '.join(names)}); received: "
                           f"{str(network)[:60]!r}. Fix: use --network {names[0]}")
    return names


def network_project(project: Any, network: str) -> Project:
    """The project holding only ``network`` (see the module docstring). Raises NetworkError for a network the
    project does not have or one left without any layer."""
    project = as_project(project)
    _check_name(project, network)
    members = set(_groups(project)[network])
    original = {n.id: n.type for n in project.graph.nodes}
    graph = training_graph(project.graph)  # Noise and fed Targets are Inputs here
    keep = {nid for nid in members if original.get(nid) not in TRAINING_ONLY}
    edges = [e for e in graph.edges if e.target in keep and e.target_port != "like"]
    used = {e.source for e in edges}
    keep = {nid for nid in keep if original[nid] not in ("Input", "Noise") or nid in used}
    edges = [e for e in edges if e.target in keep]
    sources = {e.source for e in edges} - keep  # outside the network, feeding it: Inputs
    if not keep - {n.id for n in graph.nodes if n.type == "Input"}:
        raise NetworkError(f"network {network!r} has no layer to export; received: only loss nodes, targets or "
                           "inputs. Fix: export another network")
    report = infer_shapes(graph)
    nodes = []
    for n in graph.nodes:
        if n.id in keep and n.type != "Input":
            nodes.append(n.model_copy(deep=True))
        elif n.id in keep or n.id in sources:
            nodes.append(_as_input(n, report))
    edges = [Edge(**e.model_dump()) for e in edges]
    ids = {n.id for n in graph.nodes}
    losses = {nid for nid, t in original.items() if t in LOSS_TYPES}
    for n in list(nodes):  # a value the objective reads, consumed inside too (a VAE's mu, logvar): an output
        if n.type != "Input" and any(e.source == n.id for e in edges) and any(
                e.source == n.id and e.target in losses for e in project.graph.edges):
            out_id = _fresh(f"{n.id}_out", ids)
            nodes.append(Node(id=out_id, type="Output"))
            edges.append(Edge(source=n.id, target=out_id))
    return Project(name=f"{project.name} · {network}"[:200],
                   description=f"The {network} network of {project.name!r}, exported on its own.",
                   graph=Graph(nodes=nodes, edges=edges))


def explain_view(project: Any) -> tuple[str, Project]:
    """The part of a drawn objective that Explain can attribute: among the networks and parts that read only the
    dataset's Inputs (not noise, not another network's output), the one with the fewest outputs, cut down to its
    first output (a VAE's ``encoder`` explaining μ). Returns ``(name, project)``.

    >>> from builder import load_template
    >>> name, view = explain_view(load_template("vae"))
    >>> name, [n.id for n in view.graph.nodes]
    ('encoder', ['image', 'enc1', 'enc_act', 'mu'])

    Raises:
        NetworkError: no network reads the dataset's samples (a GAN's generator reads noise, its discriminator
        a stack of real and generated samples).
    """
    project = as_project(project)
    data = {n.id for n in project.graph.nodes if n.type == "Input"}
    best: tuple[int, str, Project, str] | None = None
    for name in network_names(project):
        sub = network_project(project, name)
        ins = {n.id for n in sub.graph.nodes if n.type == "Input"}
        outs = infer_shapes(sub.graph).output_nodes
        if ins and ins <= data and outs and (best is None or len(outs) < best[0]):
            best = (len(outs), name, sub, outs[0])
    if best is None:
        raise NetworkError(f"Explain attributes a network that reads the dataset's samples; received: networks "
                           f"{', '.join(network_names(project)) or 'none'}, which read noise or another network's "
                           "output. Fix: look at the Train page's samples and loss terms, or explain a classifier")
    _, name, sub, out = best
    keep, todo = {out}, [out]
    while todo:  # the first output and everything it is computed from
        nid = todo.pop()
        for e in sub.graph.edges:
            if e.target == nid and e.source not in keep:
                keep.add(e.source)
                todo.append(e.source)
    graph = Graph(nodes=[n for n in sub.graph.nodes if n.id in keep],
                  edges=[e for e in sub.graph.edges if e.source in keep and e.target in keep])
    return name, sub.model_copy(update={"graph": graph})


def _fresh(base: str, taken: set[str]) -> str:
    name, i = base, 2
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


def _as_input(node: Node, report) -> Node:
    """``node`` as an Input of its own shape (an Input stays what it is)."""
    if node.type == "Input":
        return node.model_copy(deep=True)
    info = report.nodes.get(node.id)
    if info is None or info.shape is None:
        raise NetworkError(f"a node feeding the network has no known shape; received: {node.id!r}. Fix: correct "
                           "the graph's problems first (layerlab check)")
    params: dict[str, Any] = {"shape": [int(s) for s in info.shape], "modality": "auto"}
    if info.type_out.kind == TOKENS:
        params.update(modality="tokens", vocab_size=int(info.type_out.vocab))
    return Node(id=node.id, type="Input", params=params, label=node.label, position=node.position)


def network_state(project: Any, network: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The weights of ``network`` taken from a run's state dict (the trainer's model), under the names the
    network's own graph gives its nodes."""
    project = as_project(project)
    sub = network_project(project, network)
    full = module_names(training_graph(project.graph))
    mine = module_names(sub.graph)
    rename = {full[nid]: mine[nid] for nid in mine if nid in full}
    out = {}
    for key, value in state.items():
        head, dot, rest = key.partition(".")
        if head in rename:
            out[rename[head] + dot + rest] = value
    return out


def network_model(project: Any, network: str, weights: str | os.PathLike | dict | None = None) -> torch.nn.Module:
    """The compiled network in eval mode, with the run's ``weights`` (a weights file or state dict) when given.
    Raises NetworkError when the weights are not this project's."""
    project = as_project(project)
    sub = network_project(project, network)
    model = compile_graph(sub.graph)
    if weights is not None:
        state = read_weights(weights)[0] if isinstance(weights, str | os.PathLike) else dict(weights)
        try:
            model.load_state_dict(network_state(project, network, state))
        except RuntimeError as e:
            raise NetworkError(f"the weights do not fit network {network!r}; received: "
                               f"{str(e).splitlines()[0][:200]}. Fix: export the run these weights belong to") from None
    return model.eval()


__all__ = ["network_names", "network_project", "explain_view", "network_state", "network_model", "NetworkError",
           "TRAINING_ONLY"]
