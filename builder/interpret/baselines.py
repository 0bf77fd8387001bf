"""Baselines: the reference input that path and perturbation methods compare the sample against.

Example::

    >>> import torch
    >>> make_baseline(torch.ones(1, 3), "zeros").tolist(), baselines_for("tokens")
    ([[0.0, 0.0, 0.0]], ('pad',))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from builder.data import records
from builder.errors import ExplainError

BASELINES = ("zeros", "mean", "blur", "pad")
BASELINE_LABELS = {"zeros": "Zeros", "mean": "Training mean", "blur": "Blurred input", "pad": "Pad token"}
_FOR_MODALITY = {"image": ("zeros", "mean", "blur"), "tabular": ("zeros", "mean"), "points2d": ("zeros", "mean"),
                 "sequence": ("zeros", "mean"), "tokens": ("pad",)}


def baselines_for(modality: str) -> tuple[str, ...]:
    """The baseline kinds that fit a modality, the default first (``zeros``; ``pad`` for token ids)."""
    return _FOR_MODALITY.get(modality, ("zeros",))


def make_baseline(inputs: Tensor, kind: str | float | Tensor = "zeros", *, data: Tensor | None = None,
                  pad_token: int = 0, sigma: float = 2.0) -> Tensor:
    """A reference input of the same shape as ``inputs``.

    Args:
        kind: ``zeros``, ``mean`` (per-feature training mean of ``data``), ``blur`` (Gaussian blur of each
            image, ``sigma`` pixels), ``pad`` (every token is ``pad_token``), a number or a tensor.
    Raises:
        ExplainError: unknown kind, or a kind that does not fit the inputs.
    """
    if isinstance(kind, Tensor):
        base = kind.to(inputs.device, inputs.dtype)
        if base.shape != inputs.shape:
            try:
                base = base.expand_as(inputs).clone()
            except RuntimeError:
                raise ExplainError(f"baselines: shape {tuple(kind.shape)} does not match the inputs "
                                   f"{tuple(inputs.shape)}") from None
        return base
    if records.number(kind, finite=False) is not None:
        return torch.full_like(inputs, kind)
    tokens = not inputs.is_floating_point()
    if kind == "zeros":
        return torch.full_like(inputs, pad_token) if tokens else torch.zeros_like(inputs)
    if kind == "pad":
        if not tokens:
            raise ExplainError("baselines='pad' is for token inputs; use 'zeros', 'mean' or 'blur'")
        return torch.full_like(inputs, pad_token)
    if kind == "mean":
        if tokens:
            raise ExplainError("baselines='mean' is not defined for token ids; use 'pad'")
        if data is None:
            raise ExplainError("baselines='mean' needs the training inputs: pass baseline_data=X_train")
        if tuple(data.shape[1:]) != tuple(inputs.shape[1:]):
            raise ExplainError(f"baseline_data: sample shape {tuple(data.shape[1:])} does not match the "
                               f"inputs {tuple(inputs.shape[1:])}")
        return data.float().mean(0, keepdim=True).to(inputs).expand_as(inputs).clone()
    if kind == "blur":
        if inputs.dim() != 4:
            raise ExplainError("baselines='blur' is for images (B, C, H, W); use 'zeros' or 'mean'")
        return _gaussian_blur(inputs, sigma)
    raise ExplainError(f"baselines: unknown kind {kind!r}; expected one of {', '.join(BASELINES)}, "
                       "a number or a tensor")


def _gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    if sigma <= 0:
        return x.clone()
    radius = max(1, int(3 * sigma))
    r = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(r ** 2) / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    pad_h, pad_w = min(radius, x.shape[2] - 1), min(radius, x.shape[3] - 1)
    y = F.pad(x, (pad_w, pad_w, pad_h, pad_h), mode="reflect") if min(pad_h, pad_w) > 0 else x
    kh = k[radius - pad_h: radius + pad_h + 1].view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    kw = k[radius - pad_w: radius + pad_w + 1].view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    y = F.conv2d(y, kh / kh.sum(2, keepdim=True), groups=c)
    return F.conv2d(y, kw / kw.sum(3, keepdim=True), groups=c)


__all__ = ["BASELINES", "BASELINE_LABELS", "baselines_for", "make_baseline"]
