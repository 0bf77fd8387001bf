"""Image augmentation per batch on the training device: random crop with padding, horizontal flip, small affine
(rotation and scale), colour jitter (brightness, contrast).

Settings are a small dict stored with the run (``TrainConfig.augment``; empty: off), e.g.
``{"flip": 1, "crop": 4}``; :func:`parse_augment` reads the CLI's ``flip,crop=2,brightness=0.3``. The random
draws of batch ``b`` of epoch ``e`` come from a CPU ``torch.Generator`` seeded with (seed, e, b), so a resumed
run, or the same run on another device, draws the same augmentation. Example::

    >>> parse_augment("flip,crop=2")
    {'flip': 1.0, 'crop': 2.0}
    >>> import torch
    >>> aug = Augment({"flip": 1, "crop": 2, "brightness": 0.2}, seed=0)
    >>> x = torch.rand(4, 3, 8, 8)
    >>> torch.equal(aug(x, epoch=1, batch=5), aug(x, epoch=1, batch=5)), aug(x, 1, 5).shape
    (True, torch.Size([4, 3, 8, 8]))
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from builder.errors import DatasetError

if TYPE_CHECKING:
    import torch

#: each setting, its value when named without one (CLI ``--augment flip``), and its allowed range
AUGMENTS: dict[str, tuple[float, float, float]] = {
    "flip": (1.0, 0.0, 1.0),  # horizontal flip (1: with probability 1/2; 0: off)
    "crop": (4.0, 0.0, 64.0),  # zero padding in pixels, then a random crop back to the size
    "affine": (10.0, 0.0, 45.0),  # rotation up to +- degrees, scale up to +- degrees/100 (small affine)
    "brightness": (0.2, 0.0, 1.0),  # intensity x U(1 - v, 1 + v)
    "contrast": (0.2, 0.0, 1.0),  # (x - mean) x U(1 - v, 1 + v) + mean, per image
}


def parse_augment(text: str | dict | None) -> dict[str, float]:
    """Settings from ``"flip,crop=2"`` (or a dict), checked. Raises DatasetError naming the bad item."""
    if not text:
        return {}
    items: dict[str, Any] = dict(text) if isinstance(text, dict) else {}
    if isinstance(text, str):
        for part in (p.strip() for p in text.split(",")):
            if part:
                name, _, value = part.partition("=")
                items[name.strip()] = value.strip() if value else None
    out = {}
    for name, value in items.items():
        if name not in AUGMENTS:
            raise DatasetError(f"unknown augmentation {name!r}; received: {name!r}. Fix: use some of "
                               f"{', '.join(AUGMENTS)} (e.g. --augment flip,crop=4)")
        default, lo, hi = AUGMENTS[name]
        try:
            v = default if value is None else float(value)
        except (TypeError, ValueError):
            v = math.nan
        if isinstance(value, bool):
            v = float(value)
        if not (lo <= v <= hi):
            raise DatasetError(f"augmentation {name} must be between {lo:g} and {hi:g}; received: {value!r}. "
                               f"Fix: e.g. {name}={default:g}")
        if v:
            out[name] = v
    return out


def check_augment_input(settings: dict, input_shape: tuple[int, ...], modality: str) -> None:
    """Refuse augmentation of inputs that are not images (C, H, W). Raises DatasetError."""
    if settings and (modality != "image" or len(input_shape) != 3):
        raise DatasetError(f"augmentation works on images (C, H, W); received: {modality} inputs of shape "
                           f"{list(input_shape)}. Fix: train without augment, or on an image dataset with a "
                           "convolutional Input")


class Augment:
    """A batch transform for (B, C, H, W) float images; ``clamp`` keeps [0, 1] images in range."""

    def __init__(self, settings: dict, seed: int, *, clamp: bool = True):
        self.settings = parse_augment(settings)
        self.seed = int(seed)
        self.clamp = clamp

    def __bool__(self) -> bool:
        return bool(self.settings)

    def generator(self, epoch: int, batch: int) -> torch.Generator:
        """The CPU generator of one batch (seed, epoch, batch mixed into one 63-bit seed)."""
        import torch  # lazy: heavy (torch)

        s = (self.seed * 1_000_003 + epoch) * 1_000_003 + batch
        return torch.Generator().manual_seed(s % (2**63 - 1))

    def at(self, epoch: int, batch: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """This transform for batch ``batch`` of epoch ``epoch`` (for :meth:`~builder.data.splits.Split.batch`)."""
        return functools.partial(self, epoch=epoch, batch=batch)

    def __call__(self, x: torch.Tensor, epoch: int, batch: int) -> torch.Tensor:
        """Batch ``x`` augmented with the draws of (epoch, batch); draws on the CPU, work on ``x``'s device."""
        import torch  # lazy: heavy (torch)

        st, g = self.settings, self.generator(epoch, batch)
        n, _, h, w = x.shape
        dev = x.device

        def u(*shape):  # uniform [0, 1) on the CPU generator, then on the device
            return torch.rand(*shape, generator=g).to(dev, non_blocking=True)
        if st.get("crop"):
            p = int(st["crop"])
            xp = torch.nn.functional.pad(x, (p, p, p, p))
            oy = (u(n) * (2 * p + 1)).long().clamp_(max=2 * p)
            ox = (u(n) * (2 * p + 1)).long().clamp_(max=2 * p)
            rows = (oy[:, None] + torch.arange(h, device=dev))[:, :, None]  # (n, h, 1)
            cols = (ox[:, None] + torch.arange(w, device=dev))[:, None, :]  # (n, 1, w)
            x = xp[torch.arange(n, device=dev)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
        if st.get("flip"):
            x = torch.where((u(n) < 0.5 * st["flip"])[:, None, None, None], x.flip(3), x)
        if st.get("affine"):
            deg = st["affine"]
            ang = (u(n) * 2 - 1) * math.radians(deg)
            scale = 1 + (u(n) * 2 - 1) * deg / 100
            cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
            theta = torch.stack([torch.stack([cos, -sin, torch.zeros_like(cos)], 1),
                                 torch.stack([sin, cos, torch.zeros_like(cos)], 1)], 1).to(x.dtype)
            grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
            x = torch.nn.functional.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
        if st.get("brightness"):
            v = st["brightness"]
            x = x * (1 + (u(n) * 2 - 1) * v)[:, None, None, None]
        if st.get("contrast"):
            v = st["contrast"]
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * (1 + (u(n) * 2 - 1) * v)[:, None, None, None] + mean
        if self.clamp and (st.get("brightness") or st.get("contrast")):
            x = x.clamp(0, 1)
        return x.contiguous()


__all__ = ["AUGMENTS", "Augment", "parse_augment", "check_augment_input"]
