"""Shipped template projects (JSON project files in this folder)."""

from __future__ import annotations

from importlib import resources

from builder.errors import LayerLabError
from builder.graph.project import Project, load_project

TEMPLATE_NAMES = ("mlp", "cnn", "resnet", "lstm", "transformer", "autoencoder")
#: Templates with a drawn objective (several loss outputs): loadable by name, not yet in TEMPLATE_NAMES (the
#: exports and the app's template list expect one output per template).
OBJECTIVE_TEMPLATES = ("gan", "vae")


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
    if name not in TEMPLATE_NAMES + OBJECTIVE_TEMPLATES:
        raise LayerLabError(f"unknown template; received: {name!r}. Fix: use one of {', '.join(TEMPLATE_NAMES)}")
    return resources.files(__package__).joinpath(f"{name}.json").read_text(encoding="utf-8")


def load_template(name: str) -> Project:
    """Load a template as a Project."""
    return load_project(template_text(name))
