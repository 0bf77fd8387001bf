"""Graph versus dataset: does a graph's Input and output fit a dataset, and the one-click fix.

``check_compat`` lists every mismatch (Input shape, modality, vocabulary size, output width) on the node to
change; ``adapt_graph`` returns a copy with those set for the dataset (an image set fed to a network of vectors
gets a vector Input of the flattened size); ``train_problems`` is what Train refuses (the graph's own shape
errors, then the fit to the dataset as shaped for the graph): the one verdict the Data page's "fits" and Train
share; ``fitting_template`` names the kind of network a dataset fits when the graph cannot be adapted.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from builder.data.splits import DatasetInfo
from builder.errors import Problem
from builder.graph.project import Edge, Graph, Node, Position, as_graph
from builder.graph.shapes import ShapeReport, infer_shapes
from builder.graph.templates import load_template


def _last_linear(graph, report: ShapeReport, out_id: str) -> str | None:
    """Walk back from an output node through single-input nodes to the nearest Linear (edges from the report)."""
    seen, cur = set(), out_id
    while cur is not None and cur not in seen:
        seen.add(cur)
        if graph.node(cur).type == "Linear":
            return cur
        ps = report.in_edges.get(cur, [])
        cur = ps[0][0].source if len(ps) == 1 else None
    return None


def _output_width(graph, report: ShapeReport, out_id: str, per_step: bool = False) -> int | None:
    """The values per sample of an output (per position with ``per_step``: a language model's logits)."""
    info = report.nodes.get(out_id)
    shp = info.shape if info is not None else None
    if shp:
        return int(np.prod(shp)) if len(shp) > 1 and not per_step else int(shp[-1])
    lin = _last_linear(graph, report, out_id)  # shapes unknown upstream of a problem: read the last Linear
    if lin is not None and "out_features" in graph.node(lin).params:
        return int(graph.node(lin).params["out_features"])
    return None


def check_compat(graph, info: DatasetInfo, report: ShapeReport | None = None) -> list[Problem]:
    """Every mismatch between a graph and a dataset, each on the node to change with the fix.

    Checks the Input node's shape, modality and vocabulary size, and the output width against the number
    of classes (or targets). ``report`` is the graph's analysis when the caller has it (else it is computed
    once). Returns an empty list when they fit.
    """
    graph = as_graph(graph)
    report = report if report is not None else infer_shapes(graph)
    problems: list[Problem] = []
    inputs = [n for n in graph.nodes if n.type == "Input"]
    want = list(info.input_shape)
    if len(inputs) != 1:
        problems.append(Problem("dataset_inputs", f"dataset {info.shown_name!r} feeds exactly one Input node; the "
                                f"graph has {len(inputs)}: keep one Input with shape {want}"))
    for n in inputs[:1]:
        shape = n.params.get("shape")
        if shape is None or list(shape) != want:
            problems.append(Problem("input_shape_mismatch", f"Input shape {shape} does not match dataset "
                                    f"{info.shown_name!r}, which gives samples of shape {want}; set shape to {want}",
                                    node=n.id))
        modality = n.params.get("modality", "vector")
        if info.modality == "tokens":
            if modality != "tokens":
                problems.append(Problem("input_modality_mismatch", f"dataset {info.shown_name!r} gives token ids; "
                                        f"Input modality is {modality!r}: set modality to 'tokens' and "
                                        f"vocab_size to {info.vocab_size}", node=n.id))
            elif int(n.params.get("vocab_size") or 0) < (info.vocab_size or 0):
                problems.append(Problem("vocab_size_mismatch", f"Input vocab_size "
                                        f"{n.params.get('vocab_size')} is smaller than dataset "
                                        f"{info.shown_name!r}'s vocabulary of {info.vocab_size} tokens; set "
                                        f"vocab_size to {info.vocab_size}", node=n.id))
        elif modality == "tokens":
            problems.append(Problem("input_modality_mismatch", f"Input modality is 'tokens' but dataset "
                                    f"{info.shown_name!r} gives float {info.input_modality}s; set modality to "
                                    f"{info.input_modality!r}", node=n.id))
    outs = list(report.output_nodes)
    if len(outs) != 1:
        problems.append(Problem("dataset_outputs", f"training needs exactly one output; the graph has "
                                f"{len(outs)} ({', '.join(outs)}): remove the extra ends"))
        return problems
    width = _output_width(graph, report, outs[0], per_step=info.task == "next_token")
    shp = getattr(report.nodes.get(outs[0]), "shape", None)
    if info.task == "next_token" and shp and len(shp) != 2:
        problems.append(Problem("output_size_mismatch", f"next-token prediction needs logits per position, shape "
                                f"[tokens, {info.out_size}]; received: output shape {list(shp)}. Fix: keep the "
                                "sequence axis (LSTM output_mode 'all', no pooling) up to the last Linear",
                                node=outs[0]))
    accepted = {info.out_size} | ({1, 2} if info.task == "binary" else set())
    if width is not None and width not in accepted:
        lin = _last_linear(graph, report, outs[0]) or outs[0]
        what = {"multiclass": f"{info.num_classes} classes", "binary": "2 classes (1 logit or 2)",
                "regression": f"{info.out_size} target(s)",
                "reconstruction": f"{info.out_size} values (the flattened input)",
                "next_token": f"a vocabulary of {info.out_size} tokens (logits per position)",
                "forecast": f"{info.out_size} values to forecast (horizon x series)"}[info.task]
        problems.append(Problem("output_size_mismatch", f"the model outputs {width} values per sample but "
                                f"dataset {info.shown_name!r} has {what}; set out_features of {lin!r} to "
                                f"{info.out_size}", node=lin))
    return problems


def _set_for(g: Graph, report: ShapeReport, info: DatasetInfo, shape: list[int]) -> Graph:
    """``g`` (changed in place) with its Input set to ``shape`` and the dataset's modality, the last Linear's width
    set for ``info``."""
    inputs = [n for n in g.nodes if n.type == "Input"]
    if inputs:
        n = inputs[0]
        n.params["shape"] = list(shape)
        n.params["modality"] = info.input_modality if len(shape) == len(info.input_shape) else "vector"
        if info.modality == "tokens":
            n.params["vocab_size"] = info.vocab_size
        else:
            n.params.pop("vocab_size", None)
    outs = list(report.output_nodes)
    if len(outs) == 1:
        lin = _last_linear(g, report, outs[0])
        if lin is not None:
            params = g.node(lin).params
            cur = params.get("out_features")
            if not (info.task == "binary" and cur in (1, 2)):
                params["out_features"] = info.out_size
    return g


def adapt_graph(graph, info: DatasetInfo, report: ShapeReport | None = None) -> Graph:
    """A copy of ``graph`` with the Input shape/modality/vocab_size and the last Linear's width set for ``info``.

    Float samples of more than one dimension (images) fed to a network whose layers take vectors (an MLP: its
    shapes fail with the image shape) get a vector Input of the flattened size instead (training flattens the
    samples for it: :func:`builder.data.fit.fit_dataset`). Whether the result trains is
    :func:`train_problems`'s answer. Only the graph's structure is read from ``report`` (outputs, edges), so the
    report of the graph before adapting serves.
    """

    report = report if report is not None else infer_shapes(as_graph(graph))
    first = _set_for(as_graph(graph).model_copy(deep=True), report, info, list(info.input_shape))
    if len(info.input_shape) > 1 and info.input_dtype == "float32" and not _fits(first, info):
        flat = (int(np.prod(info.input_shape)),)
        flattened = _set_for(as_graph(graph).model_copy(deep=True), report, info, list(flat))
        if _fits(flattened, replace(info, input_shape=flat)):  # the info of the samples as flattened for it
            return flattened
    return first


def _fits(graph: Graph, info: DatasetInfo) -> bool:
    report = infer_shapes(graph)
    return report.ok and not check_compat(graph, info, report)


def fits_at_length(graph, info: DatasetInfo, length: int) -> bool:
    """Would ``graph`` train on ``info``'s token samples read at ``length`` tokens each (the Data page's "Use max
    length N": the data made to fit a network whose length is fixed)? Reading texts at another length changes
    nothing else, so a network of another kind (a language model on texts with classes) stays refused: the page
    offered a GPT "Read them at 32: the data is made to fit the network", and Train then refused it.

    >>> from builder.data import load_dataset
    >>> info = load_dataset("text_sentiment").info
    >>> n = int(info.input_shape[0])
    >>> fits_at_length(load_template("gpt").graph, info, 32), fits_at_length(load_template("sentiment_lstm").graph, info, n)
    (False, True)
    """
    return _fits(as_graph(graph), replace(info, input_shape=(int(length),)))


def fixed_by_data(graph, report: ShapeReport | None = None) -> set[str]:
    """The parameters (``node.param``) a dataset sets through :func:`adapt_graph`, beyond the Input's: the width
    of the last Linear before the one output (the number of classes or targets). A search never varies them.

    >>> from builder.graph.templates import load_template
    >>> fixed_by_data(load_template("mlp").graph)
    {'head.out_features'}
    """

    graph = as_graph(graph)
    report = report if report is not None else infer_shapes(graph)
    outs = list(report.output_nodes)
    lin = _last_linear(graph, report, outs[0]) if len(outs) == 1 else None
    return {f"{lin}.out_features"} if lin is not None else set()


def train_problems(graph, ds, report: ShapeReport | None = None) -> list[Problem]:
    """What Train refuses for ``graph`` on the dataset ``ds``: the graph's own errors (shape inference), else
    every mismatch with the dataset as training shapes it for the graph (:func:`check_compat` after
    :func:`builder.data.fit.fit_dataset`). Empty when Train accepts them: the Data page's "fits" and Train's list
    of problems are this one answer.

    >>> from builder.data import load_dataset
    >>> from builder.graph.templates import load_template
    >>> [p.code for p in train_problems(load_template("mlp").graph, load_dataset("moons"))]
    []
    """
    from builder.data.fit import fit_dataset  # lazy: heavy (numpy)

    graph = as_graph(graph)
    report = report if report is not None else infer_shapes(graph)
    errors = [p for p in report.problems if p.severity == "error"]
    if errors:
        return errors
    return check_compat(graph, fit_dataset(graph, ds).info, report)


# the template that fits a kind of data when a graph cannot be adapted to it (builder/graph/templates). Texts with
# classes ("text": a tokenizer pads them to max length) get the LSTM that reads the Input's padding_mask: the LSTM
# sequence classifier reads its final state after the padding, and on uploaded 4-word reviews padded to 16 it stayed
# at 51 % test accuracy after 6 epochs where the Sentiment LSTM reached 100 %. Token ids with no padding (the
# built-in sequence task, whose id 0 is a real token) keep the plain LSTM.
_FITTING = {"next_token": "gpt", "text": "sentiment_lstm", "tokens": "lstm", "series": "rnn_forecaster", "image": "cnn",
            "vector": "mlp"}


_KINDS = {"image": "images", "tabular": "table rows", "vector": "vectors", "points2d": "2-D points", "tokens": "texts (token ids)",
          "series": "time-series windows", "sequence": "sequences"}


def _shape_text(shape, modality: str) -> str:
    dims = [int(d) for d in shape or []]
    if len(dims) == 1 and modality in ("tabular", "vector", "points2d"):
        return f"{dims[0]} values"
    if len(dims) == 1 and modality == "tokens":
        return f"{dims[0]} tokens"
    return "×".join(map(str, dims)) if dims else "any shape"


def network_kind(graph, report: ShapeReport | None = None) -> str:
    """What a graph's network takes, in a person's words (``report``: its analysis, when the caller has it).

    >>> from builder.graph.templates import load_template
    >>> network_kind(load_template("cnn").graph), network_kind(load_template("gan").graph)
    ('images of 1×8×8', 'vectors of 64 values')
    >>> network_kind(load_template("gpt").graph)
    'texts (token ids) of 32 tokens and guesses the next token at each position (a language model)'
    >>> from builder.graph.project import Graph
    >>> network_kind(Graph.model_validate({"nodes": [{"id": "x", "type": "Input", "params": {"modality": "auto"}}]}))
    'vectors of 4 values'
    """
    inp = next((n for n in as_graph(graph).nodes if n.type == "Input"), None)
    if inp is None:
        return "no Input"
    shape = inp.params.get("shape") or [4]  # (the Input's default)
    modality = inp.params.get("modality")
    if modality in (None, "auto"):  # read from the shape, as the Input does
        modality = {3: "image", 2: "sequence"}.get(len(shape), "vector")
    kind = f"{_KINDS.get(modality, modality)} of {_shape_text(shape, modality)}"
    per = _per_token(as_graph(graph), report)
    if per is None:
        return kind
    return kind + (_LANGUAGE_MODEL if per[1] else _ENCODER.format(per[0]))


def token_encoder(graph, report: ShapeReport | None = None) -> bool:
    """Does ``graph`` take token ids and give a vector per token that is no vocabulary's logits (an encoder such as
    an imported DistilBERT, which needs a head to classify; a language model's values per position are one per token
    of its vocabulary)?

    >>> token_encoder(load_template("gpt").graph), token_encoder(load_template("sentiment_lstm").graph)
    (False, False)
    """
    per = _per_token(as_graph(graph), report)
    return per is not None and not per[1]


def _per_token(graph: Graph, report: ShapeReport | None) -> tuple[int, bool] | None:
    """``(values per position, whether they are one per token of its vocabulary: a language model)`` of a network
    that takes token ids and answers at every position (an encoder otherwise); None for any other network. The one
    rule :func:`network_kind` and :func:`token_encoder` read."""
    inp = next((n for n in graph.nodes if n.type == "Input"), None)
    if inp is None or inp.params.get("modality") != "tokens":
        return None
    width = _per_position(graph, report)
    return None if width is None else (width, width == int(inp.params.get("vocab_size") or 0))


# what a network that answers at every position is (said beside texts with classes, a GPT read "takes texts (token
# ids) of 32 tokens; received: texts (token ids) of 32 tokens with 2 classes": the same words for both sides): a
# language model when its values per position are one per token of its vocabulary, else an encoder (an imported
# DistilBERT, 16 values per token, was called "a language model" that "guesses the next token")
_LANGUAGE_MODEL = " and guesses the next token at each position (a language model)"
_ENCODER = " and gives {} values per token (an encoder: a classifier needs a head after it)"


def _per_position(graph: Graph, report: ShapeReport | None = None) -> int | None:
    """The values per position of the graph's one output when it keeps a position axis ((T, V) per sample: a
    language model's logits, an encoder's vectors); None when it has none."""
    shape = _one_output(graph, report)[1]
    return int(shape[-1]) if shape and len(shape) >= 2 and isinstance(shape[-1], int) else None


def _one_output(graph: Graph, report: ShapeReport | None) -> tuple[str, tuple | None]:
    """The graph's one output node and its per-sample shape (``("", None)`` with several or none)."""
    report = report if report is not None else infer_shapes(graph)
    outs = list(report.output_nodes)
    return (outs[0], getattr(report.nodes.get(outs[0]), "shape", None)) if len(outs) == 1 else ("", None)


def data_kind(info: DatasetInfo) -> str:
    """A dataset's samples in a person's words ("table rows of 4 values with 3 classes"; a CSV with text columns:
    "table rows of 3 columns (6 values once its text columns are one-hot encoded)", it said 6 values for 3 columns).

    >>> from builder.data.tabular import load_csv
    >>> rows = "".join(f"{i},{'FM'[i % 2]},{i % 2}\\n" for i in range(40))
    >>> data_kind(load_csv(("age,sex,y\\n" + rows).encode(), "y").info)
    'table rows of 2 columns (3 values once its text columns are one-hot encoded) with 2 classes'
    """
    what = _KINDS.get(info.modality, info.modality)
    n = int(getattr(info, "num_classes", 0) or 0)
    classes = f" with {n} classes" if info.task in ("multiclass", "binary") and n else ""
    classes += " to continue (next-token prediction)" if info.task == "next_token" else ""
    shape = _shape_text(info.input_shape, info.modality)
    levels = sum(len(v) for v in (info.categories or {}).values())
    if info.modality == "tabular" and levels and len(info.input_shape) == 1:  # a CSV's text columns: one-hot
        columns = int(info.input_shape[0]) - levels + len(info.categories)
        shape = f"{columns} columns ({shape} once its text columns are one-hot encoded)"
    return f"{what} of {shape}{classes}"


def adapt_changes(graph, fixed) -> list[str]:
    """What :func:`adapt_graph` changed, one line per changed parameter ("input: shape [2] → [192]"), in the graph's
    node order: the Data page lists these beside its "Fix the graph" button. It listed the mismatches instead, whose
    fixes are per-layer ("set shape to [3, 8, 8]"), while the button flattened the images for an MLP (an Input of
    [192]): the words said one thing and the click did another.

    >>> from builder.data import load_dataset
    >>> mlp = load_template("mlp").graph
    >>> adapt_changes(mlp, adapt_graph(mlp, load_dataset("digits").info))
    ['input: shape [2] → [64]', 'head: out_features 2 → 10']
    """
    graph, fixed = as_graph(graph), as_graph(fixed)
    before = {n.id: n.params for n in graph.nodes}
    lines = []
    for n in fixed.nodes:
        old = before.get(n.id, {})
        lines += [f"{n.id}: {k} {_shown(old.get(k))} → {_shown(v)}" for k, v in n.params.items() if old.get(k) != v]
    return lines


def resized_layers(graph, fixed) -> list[str]:
    """The layers with weights whose size :func:`adapt_graph` changed (a Linear after a smaller image reads fewer
    values), in ``fixed``'s order: a network that starts from another run's weights (an imported model) starts these
    from random weights. The Data page's fix for an imported 28x28 CNN on the 8x8 digits listed only the Input's new
    shape, and the pretrained ``fc1`` (50,240 weights) started random without a word until the run had ended.

    >>> from builder.data import load_dataset
    >>> cnn = Graph.model_validate({"nodes": [
    ...     {"id": "x", "type": "Input", "params": {"shape": [1, 28, 28], "modality": "image"}},
    ...     {"id": "conv", "type": "Conv2d", "params": {"out_channels": 4, "kernel_size": 3}},
    ...     {"id": "flat", "type": "Flatten", "params": {}},
    ...     {"id": "fc", "type": "Linear", "params": {"out_features": 10}}],
    ...     "edges": [{"source": "x", "target": "conv"}, {"source": "conv", "target": "flat"},
    ...               {"source": "flat", "target": "fc"}]})
    >>> resized_layers(cnn, adapt_graph(cnn, load_dataset("digits").info))
    ['fc']
    """
    before, after = infer_shapes(as_graph(graph)).nodes, infer_shapes(as_graph(fixed)).nodes
    return [nid for nid, n in after.items()
            if nid in before and before[nid].num_params and n.num_params != before[nid].num_params]


def _shown(v) -> str:
    return "(unset)" if v is None else str(list(v)) if isinstance(v, list | tuple) else str(v)


def text_classifier_head(graph, info: DatasetInfo, report: ShapeReport | None = None) -> Graph | None:
    """A copy of ``graph`` with a classifier head after its one output, when that output gives a vector per token
    (``(T, H)``: an encoder, such as an imported DistilBERT or BERT) and ``info`` is texts with classes: the first
    token's vector (``Select`` dim 1, index 0, BERT's ``[CLS]`` position) into a ``Linear`` with one output per class.
    Every layer of the graph is kept, so a network that starts from pretrained weights keeps them (the Data page
    offered to replace an imported DistilBERT by the Sentiment LSTM template). None when it does not apply.

    >>> from builder.data import load_dataset
    >>> from builder.graph.project import Graph
    >>> enc = Graph.model_validate({"nodes": [
    ...     {"id": "tokens", "type": "Input", "params": {"shape": [20], "modality": "tokens", "vocab_size": 500}},
    ...     {"id": "embed", "type": "Embedding", "params": {"embedding_dim": 8}}],
    ...     "edges": [{"source": "tokens", "target": "embed"}]})
    >>> g = text_classifier_head(enc, load_dataset("text_sentiment").info)
    >>> [(n.id, n.type) for n in g.nodes[2:]], tuple(infer_shapes(g).nodes["head"].shape)
    ([('first_token', 'Select'), ('head', 'Linear')], (2,))
    >>> text_classifier_head(load_template("sentiment_lstm").graph, load_dataset("text_sentiment").info) is None
    True
    """
    graph = as_graph(graph)
    if info.modality != "tokens" or info.task not in ("multiclass", "binary"):
        return None
    out, shape = _one_output(graph, report)
    if not shape or len(shape) != 2:
        return None
    g = graph.model_copy(deep=True)
    taken = {n.id for n in g.nodes}

    def fresh(base: str) -> str:
        return next(f"{base}{'' if i == 0 else f'_{i}'}" for i in range(len(taken) + 1)
                    if f"{base}{'' if i == 0 else f'_{i}'}" not in taken)

    last = g.node(out)
    x, y = (last.position.x, last.position.y) if last.position is not None else (0.0, 0.0)
    first, head = fresh("first_token"), fresh("head")
    g.nodes += [Node(id=first, type="Select", params={"dim": 1, "index": 0}, position=Position(x=x + 260, y=y)),
                Node(id=head, type="Linear", params={"out_features": int(info.num_classes or info.out_size)},
                     position=Position(x=x + 520, y=y))]
    g.edges += [Edge(source=last.id, target=first), Edge(source=first, target=head)]
    return g


def template_title(name: str) -> str:
    """The title a template is shown with ("MLP for tabular data")."""
    return load_template(name).name


def fitting_template(info: DatasetInfo) -> str:
    """The name of the template whose kind of network fits ``info``'s samples: a GPT for next-token prediction (logits
    per position), an LSTM that reads the padding mask for tokenized texts with classes (padded to max length), a
    plain LSTM for other token ids, the RNN forecaster for time-series windows (the page named "MLP for
    tabular data" for sunspots), a CNN for images (channels, height, width), an MLP for feature vectors.

    >>> from builder.data import load_dataset
    >>> fitting_template(load_dataset("digits").info), fitting_template(load_dataset("moons").info)
    ('cnn', 'mlp')
    >>> fitting_template(load_dataset("text_sentiment").info), fitting_template(load_dataset("sequence").info)
    ('sentiment_lstm', 'lstm')
    """
    if info.modality == "tokens":
        if info.task == "next_token":
            return _FITTING["next_token"]
        return _FITTING["text" if info.tokenizer else "tokens"]
    if info.modality == "series":
        return _FITTING["series"]
    return _FITTING["image"] if len(info.input_shape) == 3 else _FITTING["vector"]


__all__ = ["check_compat", "adapt_graph", "resized_layers", "train_problems", "fits_at_length", "fitting_template", "fixed_by_data", "network_kind",
           "data_kind", "template_title", "text_classifier_head", "adapt_changes", "token_encoder"]
