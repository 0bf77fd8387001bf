"""Shipped template projects (JSON project files in this folder)."""

from __future__ import annotations

from importlib import resources

from builder.errors import LayerLabError
from builder.graph.project import Project, load_project

#: Templates with a drawn objective (loss nodes, several outputs; the GAN two networks with their own optimizers).
OBJECTIVE_TEMPLATES = ("gan", "vae")
#: Every template, in the order the Build page's picker and ``layerlab templates`` list them.
TEMPLATE_NAMES = ("mlp", "cnn", "resnet", "lstm", "transformer", "gpt", "sentiment_lstm", "text_encoder",
                  "rnn_forecaster", "autoencoder", *OBJECTIVE_TEMPLATES)


def list_templates() -> list[dict]:
    """Name, title and description of every template."""
    out = []
    for name in TEMPLATE_NAMES:
        p = load_template(name)
        out.append({"name": name, "title": p.name, "description": p.description,
                    "dataset": (p.training or {}).get("dataset")})
    return out


def template_text(name: str) -> str:
    """The JSON text of a template."""
    if name not in TEMPLATE_NAMES:
        raise LayerLabError(f"unknown template; received: {name!r}. Fix: use one of {', '.join(TEMPLATE_NAMES)}")
    return resources.files(__package__).joinpath(f"{name}.json").read_text(encoding="utf-8")


def load_template(name: str) -> Project:
    """Load a template as a Project."""
    return load_project(template_text(name))
