"""The layer registry's lookups: :func:`get_spec`, :func:`has_spec`, :func:`all_specs`, :func:`palette`.

A spec holds the parameter schema (default, range, choices, help), the ports, the shape rule, how to
construct the torch module and how to call it inside the compiled forward (:mod:`builder.graph.spec`). The
inspector widgets, the validator, shape inference, the compiler and the code exporter all read the same spec,
so adding a layer type means adding one spec in a family module of :mod:`builder.graph.layers`. Importing
this module imports those families, which fill the registry; they import only :mod:`builder.graph.spec`.
"""

from __future__ import annotations

import difflib

import builder.graph.layers  # noqa: F401  (registers the built-in specs)
import builder.graph.layers.op  # noqa: F401  (the generic operator node of imported models)
from builder.errors import LayerLabError
from builder.graph.spec import (  # noqa: F401  (re-exported: the spec types are looked up here too)
    CATEGORIES,
    LAYER_REGISTRY,
    MASK,
    MAX_SIZE,
    PAD_ID,
    PADDING_MASK,
    TENSOR,
    TOKENS,
    Cost,
    LayerSpec,
    Param,
    ShapeError,
    TensorType,
    format_shape,
    register,
    short_repr,
)


def get_spec(layer_type: str) -> LayerSpec:
    """The spec for a type. Raises LayerLabError naming close matches for an unknown type."""
    try:
        return LAYER_REGISTRY[layer_type]
    except KeyError:
        raise LayerLabError(unknown_type_message(layer_type)) from None


def has_spec(layer_type: str) -> bool:
    """Whether ``layer_type`` is a registered layer type."""
    return layer_type in LAYER_REGISTRY


def unknown_type_message(layer_type: str) -> str:
    """Message for an unknown layer type, with close matches."""
    known = list(LAYER_REGISTRY)
    lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(str(layer_type), known, n=3, cutoff=0.6)
    if not close and str(layer_type).lower() in lower:
        close = [lower[str(layer_type).lower()]]
    hint = ("did you mean " + " or ".join(f"`{c}`" for c in close) + "?") if close else \
        "use a type from the palette (`layerlab templates` shows examples)"
    return f"unknown layer type; received: type={short_repr(layer_type)}. Fix: {hint}"


def all_specs() -> list[LayerSpec]:
    """Every registered spec in palette order."""
    order = {c: i for i, c in enumerate(CATEGORIES)}
    return sorted(LAYER_REGISTRY.values(), key=lambda s: order.get(s.category, len(order)))


def palette() -> list[dict]:
    """The palette as plain dicts (for the canvas and docs)."""
    return [s.port_info() for s in all_specs()]
