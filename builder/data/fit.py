"""Fit a dataset to a graph's Input: image samples flattened for a vector Input of their size (an MLP on digits).

One rule for training, resuming, searching, exporting and explaining: when the Input's shape is the flat size
of the samples (and they are float32; token ids are never flattened) the dataset is flattened, otherwise it is
returned as it is and :func:`builder.data.compat.check_compat` names what does not fit.
"""

from __future__ import annotations

import math
from typing import Any

from builder.data.splits import Dataset
from builder.errors import DatasetError
from builder.graph.project import as_graph


def input_shape(graph: Any) -> tuple[int, ...] | None:
    """The shape (without batch) a graph's or a compiled model's Input expects; None when it has no single one.

    Accepts a :class:`~builder.graph.project.Graph`, a project or its dict (the first Input node's ``shape``),
    or a model compiled by :func:`~builder.graph.compile.compile_graph` (its ``layerlab_input_shapes``).
    """
    shapes = getattr(graph, "layerlab_input_shapes", None)
    if shapes is not None:
        return tuple(int(s) for s in next(iter(shapes.values()))) if len(shapes) == 1 else None

    inp = next((n for n in as_graph(graph).nodes if n.type == "Input"), None)
    shape = (inp.params.get("shape") or []) if inp is not None else []
    try:
        return tuple(int(s) for s in shape) or None
    except (TypeError, ValueError):
        return None


def fit_dataset(graph: Any, ds: Dataset, *, strict: bool = False) -> Dataset:
    """``ds`` shaped for ``graph``'s Input: flattened when the Input is a vector of the samples' flat size.

    Args:
        graph: a graph, project (or its dict), or a compiled model (see :func:`input_shape`).
        ds: the dataset.
        strict: raise when the Input still does not match the samples (the Explain page: the picked data
            must feed the model); otherwise the dataset is returned unchanged for
            :func:`~builder.data.compat.check_compat` to report.

    Raises:
        DatasetError: with ``strict``, an Input shape the dataset cannot be fitted to.

    Example::

        >>> from builder.data import load_dataset
        >>> from builder.graph.templates import load_template
        >>> ds = load_dataset("digits")
        >>> fit_dataset(load_template("autoencoder").graph, ds).info.input_shape
        (64,)
    """
    want = input_shape(graph)
    have = tuple(ds.info.input_shape)
    if want is None or want == have:
        return ds
    if len(have) > 1 and want == (math.prod(have),) and ds.info.input_dtype == "float32":
        return ds.flattened()
    if strict:
        raise DatasetError(f"the dataset {ds.info.shown_name!r} gives inputs of shape {list(have)} but the model's "
                           f"Input expects {list(want)}; pick the run's own dataset on the Data page")
    return ds


__all__ = ["fit_dataset", "input_shape"]
