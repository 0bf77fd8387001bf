"""The objective of a project, read from its graph: loss terms, their weights, what the trainer feeds, networks.

A project trains on its drawn objective when its graph holds a loss node (:data:`~builder.graph.layers.objective.
LOSS_TYPES`); otherwise the task's built-in loss applies and nothing here is used. The objective is:

- **terms**: each loss node (per-sample values, averaged over the batch) times its ``weight``; the total is
  their sum. Every term and the total are logged (step and epoch events carry ``terms``).
- **feeds**: the placeholders of the *training graph* (:func:`training_graph`: the project's graph with each
  ``Noise`` and each fed ``Target`` turned into an Input of its shape): the dataset's samples, its labels, the
  input itself, a teacher's outputs, and noise drawn per batch from a generator seeded by (seed, epoch, batch).
- **networks**: groups of nodes trained by their own optimizer. The project's ``training`` section may name
  them, ``"networks": {"generator": [node ids], "discriminator": [...]}``, with per-network settings
  ``"optimizers": {"generator": {"lr": 2e-4, "optimizer": "adam", "beta1": 0.5}}`` (:data:`NETWORK_SETTINGS`) and an
  update ``"schedule": [["discriminator", k], ["generator", 1]]`` (k discriminator steps per generator step;
  each step is one batch). Without ``networks`` every node with weights forms one network, ``model``. A loss
  node listed in a network trains that network; one listed in none trains every network.

Example::

    >>> from builder import load_template
    >>> obj = resolve_objective(load_template("gan"))
    >>> sorted(obj.networks), [t.id for t in obj.terms if t.network == "generator"]
    (['discriminator', 'generator'], ['g_loss'])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from builder.errors import DatasetError, LayerLabError, Problem, TrainingError
from builder.graph.layers.objective import (
    FED_SOURCES,
    LOSS_TYPES,
    MAX_DISTILL_TEMPERATURE,
    MIN_DISTILL_TEMPERATURE,
)
from builder.graph.project import Edge, Graph, Node, Project, as_graph, load_project
from builder.graph.shapes import infer_shapes

DEFAULT_NETWORK = "model"
#: Per-network settings a project's ``optimizers`` entry may change: TrainConfig fields, and Adam's/AdamW's
#: ``beta1``/``beta2`` (e.g. ``beta1`` 0.5 for GANs; defaults 0.9 and 0.999).
NETWORK_SETTINGS = ("optimizer", "lr", "momentum", "nesterov", "weight_decay", "grad_clip", "beta1", "beta2")
ADAM_BETAS = ("beta1", "beta2")


@dataclass(frozen=True)
class Term:
    """One loss term: the loss node's id and type, its weight and the network it trains ("" = all)."""

    id: str
    type: str
    weight: float
    network: str


@dataclass
class Objective:
    """What a project trains on (see the module docstring)."""

    terms: list[Term]
    networks: dict[str, list[str]]
    schedule: list[tuple[str, int]]
    settings: dict[str, dict[str, Any]]
    feeds: dict[str, str] = field(default_factory=dict)  # training-graph Input id -> data|labels|input|teacher|noise:<dist>
    noise_shapes: dict[str, list[int]] = field(default_factory=dict)
    teacher_width: int | None = None

    def terms_for(self, network: str) -> list[Term]:
        """The terms whose gradient updates ``network``."""
        return [t for t in self.terms if t.network in ("", network)]

    def network_at(self, step: int) -> str:
        """The network the schedule updates at global step ``step`` (0-based)."""
        cycle = [name for name, k in self.schedule for _ in range(k)]
        return cycle[step % len(cycle)]

    @property
    def uses_labels(self) -> bool:
        return "labels" in self.feeds.values()


def has_objective(project: Any) -> bool:
    """Whether a project (or graph) draws its own objective (holds a loss node)."""
    graph = as_graph(project if not isinstance(project, Project) else project.graph)
    return any(n.type in LOSS_TYPES for n in graph.nodes)


def training_graph(graph: Any) -> Graph:
    """The graph the trainer compiles: every ``Noise`` and every fed ``Target`` (labels, input, teacher) becomes an
    Input of its shape, their ``like`` edges dropped; everything else (and every node id) unchanged."""
    graph = as_graph(graph)
    fed = {n.id for n in graph.nodes if n.type == "Noise"
           or (n.type == "Target" and n.params.get("source", "labels") in FED_SOURCES)}
    nodes = []
    for n in graph.nodes:
        if n.id in fed:
            size = int(n.params.get("size") or (16 if n.type == "Noise" else 1))
            nodes.append(Node(id=n.id, type="Input", params={"shape": [size], "modality": "vector"},
                              label=n.label, position=n.position))
        else:
            nodes.append(n)
    edges = [e for e in graph.edges if e.target not in fed]
    return Graph(nodes=nodes, edges=[Edge(**e.model_dump()) for e in edges])


def resolve_objective(project: Any) -> Objective:
    """Read the objective of a project (see the module docstring). Raises TrainingError naming the fix."""
    project = load_project(project) if not isinstance(project, Project) else project
    graph = project.graph
    tr = dict(project.training or {})
    ids = {n.id for n in graph.nodes}
    nets_raw = tr.get("networks")
    if nets_raw is None:
        networks = {DEFAULT_NETWORK: [n.id for n in graph.nodes]}
    else:
        if not isinstance(nets_raw, dict) or not nets_raw or not all(
                isinstance(k, str) and isinstance(v, list) and all(isinstance(i, str) for i in v)
                for k, v in nets_raw.items()):
            raise TrainingError(f"training.networks must map network names to lists of node ids; received: "
                                f"{str(nets_raw)[:80]}. Fix: e.g. {{\"generator\": [\"g1\"], \"discriminator\": [\"d1\"]}}")
        networks = {k: list(v) for k, v in nets_raw.items()}
        seen: dict[str, str] = {}
        for name, members in networks.items():
            for nid in members:
                if nid not in ids:
                    raise TrainingError(f"network {name!r} names a node that is not in the graph; received: "
                                        f"{nid!r}. Fix: use the ids of the canvas nodes")
                if nid in seen:
                    raise TrainingError(f"a node belongs to one network only; received: {nid!r} in {seen[nid]!r} "
                                        f"and {name!r}. Fix: remove it from one of them")
                seen[nid] = name
    terms = []
    for n in graph.nodes:
        if n.type not in LOSS_TYPES:
            continue
        net = "" if nets_raw is None else next((k for k, v in networks.items() if n.id in v), "")
        terms.append(Term(n.id, n.type, float(n.params.get("weight", 1.0)), net))
    if not terms:
        raise TrainingError("the graph has no loss node; received: none. Fix: add a loss node (e.g. CrossEntropyLoss)")
    schedule = _schedule(tr.get("schedule"), networks)
    for name, _ in schedule:
        if not any(t.network in ("", name) for t in terms):
            raise TrainingError(f"network {name!r} is updated by the schedule but no loss term trains it; received: "
                                "no loss node with that network. Fix: set a loss node's network to it")
    settings = _settings(tr.get("optimizers"), networks)
    feeds, noise = {}, {}
    for n in graph.nodes:
        if n.type == "Input":
            feeds[n.id] = "data"
        elif n.type == "Noise":
            feeds[n.id] = "noise:" + str(n.params.get("distribution", "gaussian"))
            noise[n.id] = [int(n.params.get("size") or 16)]
        elif n.type == "Target" and n.params.get("source", "labels") in FED_SOURCES:
            feeds[n.id] = n.params.get("source", "labels")
    width = next((int(n.params.get("size", 1)) for n in graph.nodes
                  if n.type == "Target" and n.params.get("source") == "teacher"), None)
    return Objective(terms, networks, schedule, settings, feeds, noise, width)


def _schedule(raw: Any, networks: dict[str, list[str]]) -> list[tuple[str, int]]:
    if raw is None:
        return [(name, 1) for name in networks]
    bad = TrainingError(f"training.schedule must be a list of [network, steps] pairs; received: {str(raw)[:80]}. "
                        "Fix: e.g. [[\"discriminator\", 2], [\"generator\", 1]]")
    if not isinstance(raw, list) or not raw:
        raise bad
    out = []
    for item in raw:
        if not isinstance(item, list | tuple) or len(item) != 2 or not isinstance(item[1], int) \
                or isinstance(item[1], bool) or not 1 <= item[1] <= 1000:
            raise bad
        if item[0] not in networks:
            raise TrainingError(f"the schedule names an unknown network; received: {str(item[0])[:40]!r}. Fix: use "
                                f"one of {', '.join(map(repr, networks))}")
        out.append((item[0], item[1]))
    return out


def _settings(raw: Any, networks: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise TrainingError(f"training.optimizers must map network names to settings; received: {str(raw)[:80]}. "
                            "Fix: e.g. {\"generator\": {\"lr\": 0.0002}}")
    out = {}
    for name, st in raw.items():
        if name not in networks:
            raise TrainingError(f"training.optimizers names an unknown network; received: {str(name)[:40]!r}. "
                                f"Fix: use one of {', '.join(map(repr, networks))}")
        if not isinstance(st, dict) or set(st) - set(NETWORK_SETTINGS):
            raise TrainingError(f"per-network settings may set {', '.join(NETWORK_SETTINGS)}; received: "
                                f"{str(st)[:80]}. Fix: remove the other keys")
        for key in ADAM_BETAS:
            v = st.get(key)
            if key in st and (isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < 1):
                raise TrainingError(f"training.optimizers.{name}.{key} must be a number in [0, 1); received: "
                                    f"{str(v)[:40]}. Fix: e.g. 0.5 for a GAN's Adam beta1")
        out[name] = dict(st)
    return out


#: ``--teacher``'s defaults, measured on digits (bench/RESULTS.md "Distillation defaults", issue 34): a 64-8-10 MLP
#: student alone 0.908 mean test accuracy over seeds 0-2; distilled at T 4, alpha 0.5 (the old defaults) 0.888
#: (-1.98 points, -4.09 to +0.37); at T 1, alpha 0.5 0.906 (-0.25, -0.74 to +0.37), the least harm of the settings
#: tried. No setting beat the student alone there, so every distilled run is shown beside its student alone.
DISTILL_TEMPERATURE = 1.0
DISTILL_ALPHA = 0.5


def add_distillation(project: Any, temperature: float = DISTILL_TEMPERATURE, alpha: float = DISTILL_ALPHA) -> Project:
    """A copy of a classifier project with a distillation objective: ``alpha`` · DistillationLoss(student, teacher
    logits at ``temperature``) + (1 − ``alpha``) · CrossEntropyLoss(student, labels).

    The student's output is the graph's one output; the teacher's logits are fed per batch by the trainer
    (``--teacher RUN_ID``). Raises TrainingError for a graph with several outputs or one that has an objective.
    """
    project = load_project(project).model_copy(deep=True)
    if has_objective(project):
        raise TrainingError("the project already draws its objective; received: a graph with loss nodes. Fix: add "
                            "a DistillationLoss with a Target(source='teacher') yourself, or remove the loss nodes")
    report = infer_shapes(project.graph)
    if len(report.output_nodes) != 1 or not report.ok:
        raise TrainingError(f"distillation needs a valid student with one output; received: outputs "
                            f"{report.output_nodes}. Fix: keep a single classifier output")
    out = report.output_nodes[0]
    width = int(report.nodes[out].shape[-1])
    inp = report.input_nodes[0]
    g = project.graph
    g.nodes += [Node(id="teacher_logits", type="Target", params={"source": "teacher", "size": width}),
                Node(id="labels", type="Target", params={"source": "labels", "size": 1}),
                Node(id="distill_loss", type="DistillationLoss", params={"temperature": temperature,
                                                                         "weight": alpha}),
                Node(id="ce_loss", type="CrossEntropyLoss", params={"weight": 1.0 - alpha})]
    g.edges += [Edge(source=inp, target="teacher_logits", target_port="like"),
                Edge(source=inp, target="labels", target_port="like"),
                Edge(source=out, target="distill_loss", target_port="input"),
                Edge(source="teacher_logits", target="distill_loss", target_port="target"),
                Edge(source=out, target="ce_loss", target_port="input"),
                Edge(source="labels", target="ce_loss", target_port="target")]
    return project


def with_teacher(project: Any, run_id: str, temperature: float = DISTILL_TEMPERATURE,
                 alpha: float = DISTILL_ALPHA) -> Project:
    """``layerlab train STUDENT --teacher RUN_ID`` and the Train page's teacher control: the project with
    ``training.teacher`` set and, unless it already draws a ``Target(source="teacher")``, the distillation
    objective of :func:`add_distillation` added. Raises TrainingError."""
    if not 0 <= alpha <= 1:
        raise TrainingError(f"the distillation weight (--distill-alpha) must be in [0, 1]; received: {alpha}. "
                            "Fix: e.g. 0.5")
    if not MIN_DISTILL_TEMPERATURE <= temperature <= MAX_DISTILL_TEMPERATURE:
        raise TrainingError(f"the distillation temperature (--distill-temperature) must be in "
                            f"[{MIN_DISTILL_TEMPERATURE:g}, {MAX_DISTILL_TEMPERATURE:g}]; received: {temperature}. Fix: e.g. 4")
    project = load_project(project).model_copy(deep=True)
    drawn = any(n.type == "Target" and n.params.get("source") == "teacher" for n in project.graph.nodes)
    if not drawn:
        if has_objective(project):
            raise TrainingError("a teacher needs a student without loss nodes, or one whose objective reads the "
                                "teacher (a Target with source 'teacher'); received: loss nodes without one. Fix: "
                                "add Target(source='teacher') and a DistillationLoss, or remove the loss nodes")
        project = add_distillation(project, temperature=temperature, alpha=alpha)
    project.training = {**(project.training or {}), "teacher": run_id}
    return project


_INPUT_CODES = ("dataset_inputs", "input_shape_mismatch", "input_modality_mismatch", "vocab_size_mismatch")


def objective_compat(graph: Any, dataset: Any, report: Any = None) -> list:
    """:func:`~builder.data.compat.check_compat` for a graph with a drawn objective (what the Train page and
    :func:`~builder.runs.pipeline.run_objective` check): the dataset fit to the Input first (a flat Input takes
    the 8×8 digits), then the Input checks only (the graph's outputs are its loss terms). Raises DatasetError for
    data that cannot fit."""
    from builder.data.compat import check_compat  # lazy: heavy (numpy)
    from builder.data.fit import fit_dataset  # lazy: heavy (numpy)

    ds = fit_dataset(graph, dataset)
    return [p for p in check_compat(graph, ds.info, report) if p.code in _INPUT_CODES]


def dataset_problems(graph: Any, dataset: Any, report: Any = None) -> list:
    """What Train refuses for ``graph`` on ``dataset``, for every kind of graph: the graph's own errors, then
    :func:`objective_compat` for a drawn objective (a GAN's or VAE's loss nodes are its outputs), else
    :func:`~builder.data.compat.train_problems`. The one verdict of the Train page, the Data page's fit and fix,
    and Build's "Train this" (the Data page told a GAN on its own digits to load the CNN, which Train accepted).
    A drawn objective on data it cannot learn from, even with its Input set for it, gets one verdict
    (:func:`objective_mismatch`: the kind of network that fits and its template), not per-layer fixes. Raises
    DatasetError for data that cannot fit a drawn objective's Input when setting the Input would make it fit.

    >>> from builder.data import load_dataset
    >>> from builder.graph.templates import load_template
    >>> dataset_problems(load_template("gan").graph, load_dataset("digits"))
    []
    """
    from builder.data.compat import train_problems  # lazy: heavy (numpy)

    graph = as_graph(graph)
    report = report if report is not None else infer_shapes(graph)
    if not has_objective(graph):
        return train_problems(graph, dataset, report)
    errors = [p for p in report.problems if p.severity == "error"]
    if errors:
        return errors
    refused = None
    try:
        problems = objective_compat(graph, dataset, report)
    except DatasetError as e:
        problems, refused = [], e
    if (refused is None and not any(p.code in _KIND_CODES for p in problems)) or _adapts(graph, dataset):
        if refused is not None:
            raise refused
        return problems
    return [objective_mismatch(graph, dataset.info, report)]


_KIND_CODES = ("input_shape_mismatch", "input_modality_mismatch")


def _adapts(graph: Graph, dataset: Any) -> bool:
    """Does setting the Input (and last Linear) for the data make a drawn objective train (the Data page's fix)?"""
    from builder.data.compat import adapt_graph  # lazy: heavy (numpy)

    fixed = adapt_graph(graph, dataset.info)
    report = infer_shapes(fixed)
    if not report.ok:
        return False
    try:
        return not objective_compat(fixed, dataset, report)
    except DatasetError:
        return False


def objective_kind(graph: Any) -> str:
    """What a graph with a drawn objective is, in a person's words: "GAN" (a Noise node feeds it), "VAE" (a
    Reparameterize node), else "network with drawn losses".

    >>> from builder.graph.templates import load_template
    >>> objective_kind(load_template("gan").graph), objective_kind(load_template("vae").graph)
    ('GAN', 'VAE')
    """
    types = {n.type for n in as_graph(graph).nodes}
    return "VAE" if "Reparameterize" in types else "GAN" if "Noise" in types else "network with drawn losses"


def is_adversarial(project: Any) -> bool:
    """Whether a project trains several networks against each other (its objective names more than one network:
    a GAN's generator and discriminator), so that its summed loss says nothing about learning. False for a
    project that cannot be read.

    >>> from builder.graph.templates import load_template
    >>> is_adversarial(load_template("gan")), is_adversarial(load_template("vae")), is_adversarial(load_template("mlp"))
    (True, False, False)
    """
    try:
        return len(resolve_objective(project).networks) > 1
    except (LayerLabError, ValueError, TypeError):
        return False


def objective_mismatch(graph: Any, info: Any, report: Any = None) -> Problem:
    """The verdict for a drawn objective (a GAN, a VAE) on data whose samples do not fit its Input, when setting
    the Input would not make it train: what it learns from, what the data is, and the template whose kind of
    network fits the data (:func:`~builder.data.compat.fitting_template`). The Data page, Train and Build said
    "set shape to [4]" for a GAN on a table, which left its generator making 64 values. ``report``: the graph's analysis, when the caller has it."""
    from builder.data.compat import data_kind, fitting_template, network_kind, template_title  # lazy: numpy

    kind = objective_kind(graph)
    inp = next((n for n in as_graph(graph).nodes if n.type == "Input"), None)
    size = math.prod(int(d) for d in (inp.params.get("shape") or [])) if inp is not None else 0
    learns = {"GAN": "learns to make new samples like the ones it is fed",
              "VAE": "learns to rebuild the samples it is fed and make new ones"}.get(kind, "learns from its Input")
    same = f", or choose data of {size} values per sample" if size else ""
    digits = " (the 8×8 digits)" if size == 64 else ""
    name = fitting_template(info)
    # what that network does instead (a GPT writes text too: "makes no new ones" was said of it)
    does = "it learns to continue texts" if info.task == "next_token" else "it predicts from a sample and makes no new ones"
    return Problem("network_kind", f"The {kind} on the canvas {learns}, {network_kind(graph, report)}; received: "
                                   f"{data_kind(info)}. Fix: load the {template_title(name)} template, a network "
                                   f"that fits this data ({does}){same}{digits}")


def network_mismatch(graph: Any, info: Any, report: Any = None, *,
                     where: str = "the Data page does it in one click") -> Problem:
    """The verdict for a network (no drawn objective) on data it cannot take even with its Input and last layer set
    for it: what it takes, what the data is, and the template whose kind of network fits
    (:func:`~builder.data.compat.fitting_template`); the Data page's words, said by Train too. ``where``: where
    the one click is, as the reader's page says it (the Data page says "the button below does it"); ``report``: the graph's
    analysis, when the caller has it (read once for the three questions below)."""
    from builder.data.compat import (  # lazy: numpy
        data_kind,
        fitting_template,
        network_kind,
        template_title,
        text_classifier_head,
        token_encoder,
    )

    # an encoder (a vector per token) on texts with classes needs a head, not another network: its pretrained
    # weights would be thrown away (Train said only "load the Sentiment LSTM template" for an imported DistilBERT,
    # while the Data page offers the head)
    head = (f"add a classifier head after it (the first token's vector into a Linear with "
            f"{int(info.num_classes or info.out_size)} outputs; the Data page adds it for a network that starts from "
            "a run's weights), or " if token_encoder(graph, report) and text_classifier_head(graph, info, report) is not None
            else "")
    return Problem("network_kind", f"The network on the canvas takes {network_kind(graph, report)}; received: "
                                   f"{data_kind(info)}. Changing its Input and last layer is not enough. Fix: {head}"
                                   f"load the {template_title(fitting_template(info))} template, a network that fits "
                                   f"this data ({where})")


def train_verdict(graph: Any, dataset: Any, report: Any = None) -> list[Problem]:
    """:func:`dataset_problems` as Train tells a person what to do: a network that would not train on the data even
    with its Input and last layer set for it (the Data page's one-click fix) gets one verdict naming the network
    that fits (:func:`network_mismatch`), not per-layer fixes that would not do (Train said "set shape to [4]" and
    "set out_features to 3" for the digits CNN on a table of 4 columns, which left it a CNN that cannot take one).

    >>> from builder.data import load_dataset
    >>> from builder.graph.templates import load_template
    >>> [p.code for p in train_verdict(load_template("cnn").graph, load_dataset("iris"))]
    ['network_kind']
    >>> [p.code for p in train_verdict(load_template("mlp").graph, load_dataset("iris"))]  # its Input and head: fixes
    ['input_shape_mismatch', 'output_size_mismatch']
    """
    from builder.data.compat import adapt_graph  # lazy: heavy (numpy)

    report = report if report is not None else infer_shapes(as_graph(graph))  # one analysis for every question
    problems = dataset_problems(graph, dataset, report)
    if not problems or has_objective(graph) or any(p.code == "network_kind" for p in problems):
        return problems
    fixed = adapt_graph(as_graph(graph), dataset.info, report)
    try:
        adapts = not dataset_problems(fixed, dataset)
    except LayerLabError:
        adapts = False
    return problems if adapts else [network_mismatch(graph, dataset.info, report)]


def output_node(project: Any) -> str | None:
    """The node whose output is the model's prediction in a project with an objective: the input of its
    cross-entropy term (accuracy is measured on it), else None."""
    graph = as_graph(project if not isinstance(project, Project) else project.graph)
    for n in graph.nodes:
        if n.type == "CrossEntropyLoss":
            e = next((e for e in graph.edges if e.target == n.id and e.target_port in ("input", None)), None)
            if e is not None:
                return e.source
    return None


__all__ = ["Objective", "Term", "has_objective", "training_graph", "resolve_objective", "add_distillation",
           "with_teacher", "DISTILL_TEMPERATURE", "DISTILL_ALPHA", "output_node", "objective_compat", "dataset_problems", "objective_kind",
           "objective_mismatch", "network_mismatch", "train_verdict", "is_adversarial", "DEFAULT_NETWORK", "NETWORK_SETTINGS", "ADAM_BETAS"]
