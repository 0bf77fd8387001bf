"""Why a training loss became NaN or infinite, said once when it happens: the one home of that message, for the
trainer and the multi-network trainer (GAN, VAE).

Blaming the learning rate is right when the weights have grown (a step too large, repeated), and wrong when one
node has no finite value or derivative where the data took it: ``pow`` of a negative base to a learned exponent
(its derivative in the exponent is ``x**p * log(x)``), ``sqrt`` or ``log`` at 0 or below, a division by 0. The
message said "the learning rate is probably too high" for all of them. :func:`diagnose` looks, at the moment the
loss is found non-finite and before anything else changes, at what the step that follows sees:

- a parameter that is NaN/Inf while the weights around it stayed small: the step before, whose loss was finite,
  gave it a non-finite gradient: the nodes holding such parameters are named;
- finite parameters: the node whose output is the first non-finite one on this batch, from finite inputs, is
  named (run once through the compiled graph, :class:`torch.fx.Interpreter`);
- weights grown past :data:`LARGE`: the learning rate, as before.

This needs the loss checked at every step (the CPU's trainer does; on CUDA the loss is read at the log interval,
several steps late, so only the learning rate's message is given there).

    >>> nonfinite_message(0.001, 0, 7, Cause("gradient", ("p",)))[:108]
    'loss became NaN/Inf at epoch 1, step 7: node p has a non-finite parameter after a step whose loss was finite'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from builder.graph.report import human_number

LARGE = 1e4
"""Weights larger than this (in absolute value) when the loss turns non-finite point at the learning rate."""


@dataclass(frozen=True)
class Cause:
    """What :func:`diagnose` found: ``kind`` is ``"gradient"`` (``nodes`` hold non-finite parameters), ``"forward"``
    (``nodes`` is the one node whose output is the first non-finite one) or ``"weights"`` (grown to ``largest``)."""

    kind: str
    nodes: tuple[str, ...] = ()
    largest: float = 0.0


def _node_of(model: torch.nn.Module) -> dict[str, str]:
    """Module attribute or fx value name → graph node id (the compiled graph's names; empty for other modules)."""
    names = getattr(model, "layerlab_node_names", None) or {}
    return {attr: nid for nid, attr in names.items()}


def _owner(name: str, by_attr: dict[str, str]) -> str | None:
    """The graph node of an fx value or parameter name: its own name, or the longest node name it extends."""
    best = None
    for attr, nid in by_attr.items():
        if (name == attr or name.startswith((attr + "_", attr + "."))) and (best is None or len(attr) > len(best[0])):
            best = (attr, nid)
    return best[1] if best else None


def _finite(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point() or bool(torch.isfinite(value).all())
    if isinstance(value, (tuple, list)):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


class _FirstNonFinite(torch.fx.Interpreter):
    """Runs the compiled graph and stops at the first value that is NaN/Inf although its inputs are finite."""

    found: str | None = None

    def run_node(self, n: torch.fx.Node) -> Any:
        out = super().run_node(n)
        if self.found is None and n.op != "output" and not _finite(out) \
                and all(_finite(self.env[a]) for a in n.all_input_nodes if a in self.env):
            self.found = n.name
            raise StopIteration
        return out


def _first_nonfinite_node(model: torch.nn.Module, batch: Any) -> str | None:
    if not isinstance(model, torch.fx.GraphModule):
        return None
    interp = _FirstNonFinite(model)
    kept = {k: b.clone() for k, b in model.named_buffers()}  # BatchNorm's running statistics stay as they were
    try:
        with torch.no_grad():
            interp.run(batch)
    except StopIteration:
        pass
    except Exception:  # the diagnosis must never hide the failure it explains
        return None
    finally:
        with torch.no_grad():
            for k, b in model.named_buffers():
                b.copy_(kept[k])
    return _owner(interp.found, _node_of(model)) if interp.found else None


class _FirstFailing(torch.fx.Interpreter):
    """Runs the compiled graph and notes the node whose call raises."""

    found: str | None = None

    def run_node(self, n: torch.fx.Node) -> Any:
        try:
            return super().run_node(n)
        except Exception:
            self.found = self.found or n.name
            raise


def failing_node(model: torch.nn.Module, x: Any) -> str | None:
    """The graph node whose call raises when ``model`` (a compiled graph) runs ``x`` once in eval mode without
    gradients, or None (another module, or nothing raised): a call its shape rule accepted and its CPU kernel
    refuses (an Op node's arguments the meta kernel does not check) is then named, not only torch's words."""
    if not isinstance(model, torch.fx.GraphModule):
        return None
    interp, was = _FirstFailing(model), model.training
    model.eval()
    try:
        with torch.no_grad():
            interp.run(x)
    except Exception:  # noqa: BLE001  the failure it locates
        pass
    finally:
        model.train(was)
    return _owner(interp.found, _node_of(model)) if interp.found else None


def diagnose(model: torch.nn.Module, batch: Any = None) -> Cause:
    """What made the loss of ``batch`` non-finite, from ``model``'s parameters and one run of ``batch`` (None: the
    parameters only); see the module docstring."""
    by_attr = _node_of(model)
    bad: list[str] = []
    largest = 0.0
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.is_floating_point() or not p.numel():
                continue
            finite = torch.isfinite(p)
            if not bool(finite.all()):
                node = _owner(name, by_attr) or name.split(".")[0]
                if node not in bad:
                    bad.append(node)
            if bool(finite.any()):
                largest = max(largest, float(p[finite].abs().max()))
    if largest > LARGE:
        return Cause("weights", tuple(bad), largest)
    if bad:
        return Cause("gradient", tuple(bad), largest)
    node = _first_nonfinite_node(model, batch) if batch is not None else None
    return Cause("forward", (node,), largest) if node else Cause("weights", (), largest)


def _nodes(nodes: tuple[str, ...]) -> str:
    shown = ", ".join(nodes[:3]) + (f" and {len(nodes) - 3} more" if len(nodes) > 3 else "")
    return f"node{'s' if len(nodes) > 1 else ''} {shown}"


def _lr_hint(lr: float, grad_clip: float | None = None, task: str | None = None) -> str:
    """The learning rate's advice (weights grown by steps too large)."""
    hint = (f"the learning rate ({human_number(lr)}) is probably too high; lower it (e.g. {human_number(lr / 10)})"
            + ("" if grad_clip else " or set grad_clip (e.g. 1.0)"))
    if task in ("regression", "reconstruction"):
        hint += "; also check the targets for extreme values"
    return hint


def nonfinite_message(lr: float, epoch: int, step: int, cause: Cause | None = None, *,
                      grad_clip: float | None = None, task: str | None = None, network: str = "") -> str:
    """The one line a run that stopped on a NaN/Inf loss ends with."""
    where = f"loss became NaN/Inf at epoch {epoch + 1}, step {step}" + (f" (network {network!r})" if network else "")
    if cause is not None and cause.kind == "gradient":
        why = (f"{_nodes(cause.nodes)} {'have' if len(cause.nodes) > 1 else 'has'} a non-finite parameter after a "
               "step whose loss was finite, so a gradient there was not finite: a layer on the way has no finite "
               "derivative at the values it met (pow of a negative base to a learned exponent, sqrt or log at 0 or "
               "below, a division by 0); keep that layer's input in its domain (e.g. a positive base)")
    elif cause is not None and cause.kind == "forward":
        why = (f"{_nodes(cause.nodes)} gives NaN/Inf from finite inputs on this batch (a log or sqrt of a negative, a "
               "division by 0, an overflow): keep that node's input in its domain")
    else:
        why = _lr_hint(lr, grad_clip, task)
        if cause is not None and math.isfinite(cause.largest) and cause.largest > LARGE:
            why += f" (weights have grown to {cause.largest:.3g})"
    return f"{where}: {why}. Training stopped; the last good checkpoint is kept."


__all__ = ["Cause", "diagnose", "nonfinite_message", "failing_node", "LARGE"]
