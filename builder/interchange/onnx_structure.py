"""What an ONNX file hides of the model's structure, recovered or reported after mapping: a module called from
two places (one tensor read by two operators) becomes two nodes tied to one set of weights
(:data:`builder.graph.spec.SHARES`), and a BatchNorm that an exporter folded into the convolution before it is
reported (:func:`folded_batchnorm_notes`): it cannot be restored exactly, so the import says so.
"""

from __future__ import annotations

import json

import numpy as np

from builder.graph.spec import SHARES
from builder.interchange.onnx_read import node_scopes
from builder.interchange.onnx_values import Built, Const

#: How to export a model so that its BatchNorm layers stay in the file (named in the import's note).
KEEP_BATCHNORM = ("export with torch.onnx.export(model, args, f, dynamo=False, "
                  "training=torch.onnx.TrainingMode.PRESERVE) or do_constant_folding=False; with dynamo=True, pass "
                  "optimize=False; or save a .pt2 (torch.export.save), which keeps BatchNorm")


def tie_shared(out: Built, reads: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Tie layers that are one module used twice: same type and parameters, weights read from the very same
    tensors of the file (by name, so two layers whose weights merely have equal values stay two layers) and
    equal. The later node gets ``params["shares"]`` naming the first, loses its copy of the weights and says
    so in its label; a note is added per tie. Returns ``[(tied node, node it shares)]``.

    >>> out = Built(nodes=[{"id": "a", "type": "Linear", "params": {"out_features": 2}},
    ...                    {"id": "b", "type": "Linear", "params": {"out_features": 2}}],
    ...             weights={"a": {"weight": np.ones((2, 3))}, "b": {"weight": np.ones((2, 3))}})
    >>> tie_shared(out, {"a": {"fc.weight"}, "b": {"fc.weight"}})
    [('b', 'a')]
    >>> out.nodes[1]["params"], sorted(out.weights)
    ({'out_features': 2, 'shares': 'a'}, ['a'])
    """
    first: dict[tuple, str] = {}
    ties = []
    for node in out.nodes:
        nid, w = node["id"], out.weights.get(node["id"])
        if not w or not reads.get(nid) or SHARES in node["params"]:
            continue
        key = (node["type"], json.dumps(node["params"], sort_keys=True, default=str), frozenset(reads[nid]),
               frozenset(w))
        root = first.setdefault(key, nid)
        if root == nid or not all(np.array_equal(w[k], out.weights[root][k]) for k in w):
            continue
        node["params"][SHARES] = root
        node["label"] = f"{node.get('label') or nid} (shares {root})"
        del out.weights[nid]
        ties.append((nid, root))
        out.notes.append(f"{nid}: the same weights as {root} (one module used twice in the original): imported "
                         f"as one set of weights that both nodes use, so training keeps them tied")
    return ties


def folded_batchnorm(node, weight: Const) -> str | None:
    """How an exporter shows that it folded a BatchNorm into this Conv/ConvTranspose/Gemm ``node``: the dynamo
    exporter's optimiser records the rewrite rule (``FuseBatchNormIntoConv``) and the BatchNorm's module; the
    classic exporter's constant folding leaves weights that are no parameter of the model (``onnx::Conv_17``)
    where an unfolded convolution reads its parameter (``conv.weight``). None when neither shows.

    >>> import onnx
    >>> import numpy as np
    >>> conv = onnx.helper.make_node("Conv", ["x", "onnx::Conv_17"], ["y"])
    >>> folded_batchnorm(conv, Const(np.ones((1, 1, 1, 1)), src="onnx::Conv_17"))
    'classic'
    >>> folded_batchnorm(conv, Const(np.ones((1, 1, 1, 1)), src="conv.weight")) is None
    True
    """
    md = {p.key: p.value for p in node.metadata_props}
    _, classes = node_scopes(node)
    if "BatchNorm" in md.get("pkg.onnxscript.rewriter.rule_name", "") or \
            any("batchnorm" in c.lower() for c in classes or ()) and node.op_type != "BatchNormalization":
        return "dynamo"
    if node.op_type in ("Conv", "ConvTranspose") and (weight.src or "").startswith("onnx::"):
        return "classic"
    return None


def folded_batchnorm_note(nodes: dict[str, str]) -> str:
    """The import's note for the nodes (node id -> :func:`folded_batchnorm`'s answer) whose BatchNorm an
    exporter folded. Restoring it is not exact: only the products W·γ/σ and (b−μ)·γ/σ+β are in the file, and a
    BatchNorm with made-up statistics (μ=0, σ=1, γ=1, β=0) after them reproduces the outputs in eval mode but
    trains differently (batch statistics replace the lost γ, β), so the import says what it brings instead."""
    ids = ", ".join(sorted(nodes)[:8]) + (f" and {len(nodes) - 8} more" if len(nodes) > 8 else "")
    how = ("the exporter's optimiser folded a BatchNorm into " if "dynamo" in nodes.values() else
           "the exporter computed the weights (not parameters of the model: named onnx::...), as it does when it "
           "folds a BatchNorm into ")
    return (f"{ids}: no BatchNorm. In this file {how}the layer before it, and the BatchNorm's scale, shift and "
            "statistics cannot be told apart from the folded weights: the imported network has no BatchNorm; its "
            "outputs match, but fine-tuning it trains a different network (no batch statistics). To keep "
            f"BatchNorm, {KEEP_BATCHNORM}")


__all__ = ["tie_shared", "folded_batchnorm", "folded_batchnorm_note", "KEEP_BATCHNORM"]
