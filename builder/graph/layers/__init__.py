"""Built-in layer specs, one module per family; importing this package registers them all.

Each ``register(LayerSpec(...))`` call is one palette entry. Shapes exclude the batch dimension: an image is
``(C, H, W)``, a sequence ``(T, F)``, token ids ``(T,)``. Params are named as the torch.nn constructor arguments;
sizes that flow in from the input (in_features, in_channels, num_features, embed_dim, ...) are inferred and
listed in ``inferred``. :func:`builder.graph.registry.all_specs` orders them by palette category.
"""

from builder.graph.layers import (  # noqa: F401  (each module registers its specs)
    activation,
    arith,
    attention,
    conv,
    core,
    lora,
    merge,
    norm,
    objective,
    recurrent,
    reshape,
    tensor,
)
from builder.graph.layers.attention import sinusoid_table

__all__ = ["sinusoid_table"]
