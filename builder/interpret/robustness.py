"""Adversarial robustness: a classifier's test accuracy under FGSM / PGD perturbations of size ε (Captum).

:func:`attack` perturbs inputs with FGSM (one signed-gradient step of size ε) or PGD (``steps`` steps of
``step_size``, default ``2.5 ε / steps``, projected to the L∞ ball of radius ε), the loss being the cross-entropy
of the true class (per sample, so tiny gradients of one sample are not scaled away by a batch mean). Every
feature whose gradient is not exactly zero is moved: there is no gradient threshold (Captum's ``FGSM`` leaves
values whose gradient is below ``zero_thresh`` = 1e-6 untouched, which over-states robustness at large ε; the
sign of an exact zero is 0, so such a value stays put, as in the plain sign attack). The perturbed inputs are
clamped per feature to the range the data allows (:func:`input_bounds`): the training split's minimum and
maximum of each table column, or of each image channel (``[0, 1]`` for the built-in images), widened to include
the sample's own value, so an adversarial input never leaves the ε-ball of its original. A binary classifier
with one logit ``z`` is attacked as the two logits ``[0, z]``, the same loss. Token-id inputs are refused: a
perturbation of size ε of an integer id is not defined (attack the embeddings in your own code instead).

:func:`robustness_curve` gives accuracy against ε on a split and the examples whose prediction flips
(:func:`model_robustness` on a model's dataset); :func:`flip_view` shows one sample beside its adversarial
version with an attribution of each; :func:`robustness_run` does the curve for a finished run and keeps
``robustness.json`` in its folder (:attr:`RunFolder.robustness`); :func:`robustness_figure` draws the curve. Example::

    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    >>> x, y = torch.tensor([[0.5, 0.5]]), torch.tensor([0])
    >>> adv = attack(model, x, y, 0.1, bounds=(0.0, 1.0))
    >>> bool((adv - x).abs().max() <= 0.1 + 1e-6 and adv.min() >= 0 and adv.max() <= 1)
    True
"""

from __future__ import annotations

import itertools
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from builder.data.predictions import first_output
from builder.errors import ExplainError
from builder.escape import plotly_text
from builder.training.run_folder import keep_report, keeping

__all__ = ["ATTACKS", "RobustnessReport", "FlipView", "input_bounds", "attack", "robustness_curve",
           "model_robustness", "robustness_run", "flip_view", "robustness_figure", "parse_eps", "MAX_EPS"]

ATTACKS = ("fgsm", "pgd")
CLASSIFICATION = ("multiclass", "binary")


@dataclass
class RobustnessReport:
    """Accuracy at each ε (``eps[i]`` -> ``accuracy[i]``) under ``attack``, and per ε the count of test samples
    whose prediction flipped with a few of them (index, label, original and adversarial prediction)."""

    run_id: str | None
    attack: str
    split: str
    n: int
    bounds: list[list[float]]  # [low, high] per feature (one value each for a single range)
    steps: int | None
    eps: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    flips: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return asdict(self)

    def lines(self) -> list[str]:
        """The curve as terminal lines."""
        lo, hi = self.bounds
        box = (f"[{lo[0]:.4g}, {hi[0]:.4g}]" if len(lo) == 1 else
               f"each of {len(lo)} features' training range ({min(lo):.4g} to {max(hi):.4g})")
        out = [f"{self.attack.upper()} on the {self.split} split of run {self.run_id} ({self.n} samples; inputs "
               f"clamped to {box}"
               + (f"; {self.steps} steps" if self.attack == "pgd" else "") + ")"]
        out += [f"eps {e:<8g} accuracy {a:.4f}   flipped {f['count']}" for e, a, f in zip(self.eps, self.accuracy,
                                                                                      self.flips)]
        return out


MAX_EPS = 32  # points of an accuracy-vs-ε curve: each is an attack on the whole split
_EPS_VALUE = re.compile(r"[^,\s][^,]*")


def parse_eps(text: str | list) -> list[float]:
    """``"0,0.05,0.1"`` -> ``[0.0, 0.05, 0.1]``. Raises ExplainError for a value that is not a number >= 0, or more
    than :data:`MAX_EPS` of them, counted before any is converted (the page parses its box on every view: 20 MB of
    ``0,`` made ten million floats, kept in the page's results as the key of a curve, and as many attacks).

    >>> parse_eps("0, 0.05,0.1")
    [0.0, 0.05, 0.1]
    """
    if isinstance(text, str):  # the values between commas, found by the regex engine and taken MAX_EPS + 1 at most
        items = [m.group() for m in itertools.islice(_EPS_VALUE.finditer(text), MAX_EPS + 1)]
    else:
        items = [v for v in text if str(v).strip()]
    if len(items) > MAX_EPS:
        raise ExplainError(f"ε is a list of at most {MAX_EPS} values; received: more. Fix: e.g. 0,0.05,0.1")
    try:
        eps = [float(str(v).strip()) for v in items if str(v).strip()]
    except ValueError:
        eps = []
    if not eps or any(not (e >= 0) or e == float("inf") for e in eps):
        raise ExplainError(f"ε is a list of finite numbers >= 0; received: {str(text)[:80]!r}. Fix: e.g. 0,0.05,0.1")
    return eps


def input_bounds(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The valid input range per feature: the minimum and maximum of each column of a table ``X`` (N, F), of
    each channel of images (N, C, H, W) or of each value along axis 1 otherwise (pass the training split's
    inputs). Each bound has one sample's shape with 1 on the pooled axes, so it broadcasts over a batch.

    >>> lo, hi = input_bounds(torch.tensor([[0.0, -2.0], [1.0, 3.0]]))
    >>> lo.tolist(), hi.tolist()
    ([0.0, -2.0], [1.0, 3.0])
    >>> input_bounds(torch.rand(5, 3, 4, 4))[0].shape
    torch.Size([3, 1, 1])
    """
    X = X.detach().float()
    if X.dim() < 2:
        return X.min().reshape(()), X.max().reshape(())
    pooled = [0, *range(2, X.dim())]  # keep axis 1: the column of a table, the channel of an image
    return X.amin(dim=pooled, keepdim=True)[0], X.amax(dim=pooled, keepdim=True)[0]


def _bounds_lists(bounds: tuple[Any, Any]) -> list[list[float]]:
    """``[low values, high values]`` of per-feature bounds (scalars as one-element lists), for the report."""
    return [torch.as_tensor(b, dtype=torch.float32).reshape(-1).tolist() for b in bounds]


def _forward(model: torch.nn.Module, task: str):
    def fwd(x: torch.Tensor) -> torch.Tensor:
        out = first_output(model(x))
        out = out.reshape(len(x), -1)
        if task == "binary" and out.shape[1] == 1:  # one logit z: the two logits [0, z] (same loss as BCE)
            out = torch.cat([torch.zeros_like(out), out], 1)
        return out
    return fwd


def _loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(out, y, reduction="none")  # per sample


def _sign_grad(fwd: Any, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The sign of the per-sample loss's gradient at ``x`` (0 where the gradient is exactly 0)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(_loss(fwd(x), y).sum(), x)
    return g.sign()


def attack(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, eps: float, *, method: str = "fgsm",
           steps: int = 10, step_size: float | None = None, bounds: tuple[Any, Any] = (-float("inf"), float("inf")),
           task: str = "multiclass", batch_size: int = 256) -> torch.Tensor:
    """Adversarial versions of ``X`` (labels ``y``) at L∞ size ``eps``, clamped to ``bounds`` (floats, or
    per-feature tensors from :func:`input_bounds`) widened to include each sample's own values.

    Raises:
        ExplainError: an unknown method, integer inputs, ε < 0 or steps < 1.
    """
    if method not in ATTACKS:
        raise ExplainError(f"the attack is one of {', '.join(ATTACKS)}; received: {method!r}. Fix: use fgsm or pgd")
    if not X.is_floating_point():
        raise ExplainError(f"adversarial attacks perturb float inputs; received: {X.dtype} token ids. Fix: attack "
                           "a run on images or tables (integer ids have no ε-neighbourhood)")
    if not eps >= 0 or int(steps) < 1:
        raise ExplainError(f"ε >= 0 and steps >= 1; received: eps={eps!r}, steps={steps!r}. Fix: e.g. eps 0.1, 10 steps")
    y = y.reshape(-1).long()
    if eps == 0:
        return X.clone()
    was = model.training
    model.eval()
    fwd = _forward(model, task)
    lo, hi = (torch.as_tensor(b, dtype=X.dtype, device=X.device) for b in bounds)
    eps = float(eps)
    size = float(step_size) if step_size is not None else 2.5 * eps / int(steps)
    outs = []
    try:
        for i in range(0, len(X), batch_size):
            xb, yb = X[i:i + batch_size].detach(), y[i:i + batch_size]
            # the allowed box of each value: its ε-ball within the feature's valid range (its own value kept valid)
            low = torch.maximum(torch.minimum(lo, xb), xb - eps)
            high = torch.minimum(torch.maximum(hi, xb), xb + eps)
            if method == "fgsm":
                adv = xb + eps * _sign_grad(fwd, xb, yb)
            else:
                adv = xb.clone()
                for _ in range(int(steps)):
                    adv = torch.clamp(adv + size * _sign_grad(fwd, adv, yb), low, high)
            outs.append(torch.clamp(adv, low, high).detach())
    finally:
        model.train(was)
    return torch.cat(outs)


def _predict(model: torch.nn.Module, X: torch.Tensor, task: str) -> torch.Tensor:
    fwd = _forward(model, task)
    with torch.no_grad():
        return torch.cat([fwd(X[i:i + 1024]).argmax(1) for i in range(0, len(X), 1024)])


def robustness_curve(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, eps: list[float], *,
                     method: str = "fgsm", steps: int = 10, bounds: tuple[Any, Any] = (-float("inf"), float("inf")),
                     task: str = "multiclass", class_names: list[str] | None = None, examples: int = 8,
                     run_id: str | None = None, split: str = "test") -> RobustnessReport:
    """Accuracy on (``X``, ``y``) at every ε, and the samples whose prediction flips (``examples`` of them kept).

    Raises:
        ExplainError: not a classification task, integer inputs, bad ε or method.
    """
    if task not in CLASSIFICATION:
        raise ExplainError(f"robustness is measured as accuracy, so it needs a classification run; received task "
                           f"{task!r}. Fix: pick a multiclass or binary run")
    if len(X) == 0:
        raise ExplainError("robustness needs samples; received an empty split. Fix: a run with a test split")
    eps = parse_eps(list(eps))
    y = y.reshape(-1).long()
    model.eval()
    orig = _predict(model, X, task)
    names = list(class_names or [])

    def label(i: int) -> str:
        return names[i] if 0 <= i < len(names) else str(i)

    rep = RobustnessReport(run_id, method, split, len(X), _bounds_lists(bounds),
                           int(steps) if method == "pgd" else None)
    for e in eps:
        adv = attack(model, X, y, e, method=method, steps=steps, bounds=bounds, task=task)
        pred = _predict(model, adv, task)
        flipped = torch.nonzero(pred != orig).reshape(-1)
        rep.eps.append(float(e))
        rep.accuracy.append(float((pred == y).float().mean()))
        rep.flips.append({"eps": float(e), "count": len(flipped),
                          "examples": [{"index": int(i), "label": label(int(y[i])), "original": label(int(orig[i])),
                                        "adversarial": label(int(pred[i])),
                                        "max_change": float((adv[i] - X[i]).abs().max())}
                                       for i in flipped[:examples].tolist()]})
    return rep


def model_robustness(model: torch.nn.Module, ds: Any, eps: list[float] | str = (0, 0.05, 0.1, 0.2), *,
                     method: str = "fgsm", steps: int = 10, examples: int = 8, split: str = "test",
                     run_id: str | None = None) -> RobustnessReport:
    """:func:`robustness_curve` of ``model`` on a split of its dataset ``ds``, inputs clamped per feature to the
    training split's range (:func:`input_bounds`).

    Raises:
        ExplainError: token inputs, regression, an empty split, bad ε or method.
    """
    data = getattr(ds, split)
    if not data.X.is_floating_point():
        raise ExplainError("adversarial attacks perturb float inputs; this model reads integer token ids. Fix: "
                           "pick a model on images or tables (token ids have no ε-neighbourhood)")
    return robustness_curve(model, data.X, data.y, parse_eps(eps), method=method, steps=steps,
                            bounds=input_bounds(ds.train.X), task=ds.info.task, class_names=ds.info.class_names,
                            examples=examples, run_id=run_id, split=split)


def robustness_run(store: Any, run_id: str, eps: list[float] | str = (0, 0.05, 0.1, 0.2), *, method: str = "fgsm",
                   steps: int = 10, examples: int = 8, save: bool = True) -> RobustnessReport:
    """The accuracy-vs-ε curve of a finished run on its test split, kept as ``robustness.json``. Example::

        # not a doctest (needs a trained run): run by tests/interpret/test_robustness.py
        rep = robustness_run(store, run_id, [0, 0.05, 0.1, 0.2], method="fgsm")
        rep.accuracy  # one value per ε

    Raises:
        RunStoreError, BudgetError: as open_run. ExplainError: token inputs, regression, bad ε or method.
    """
    from builder.runs.pipeline import open_run  # lazy: heavy (safetensors)

    run = store.get(run_id)
    eps = parse_eps(eps)
    info = run.get("dataset_info") or {}
    if info.get("input_dtype") == "int64":
        raise ExplainError(f"adversarial attacks perturb float inputs; run {run['id']} reads integer token ids. "
                           "Fix: pick a run on images or tables (token ids have no ε-neighbourhood)")
    if save:  # keeping writes into the run: refused before the attacks for a reader who does not control it
        keeping(store, run["id"], "robustness")
    model, ds = open_run(store, run)
    rep = model_robustness(model, ds, eps, method=method, steps=steps, examples=examples, run_id=run["id"])
    if save:
        keep_report(store, rep, "robustness")  # the run folder's robustness.json
    return rep


@dataclass
class FlipView:
    """One sample beside its adversarial version: both inputs (the sample's shape, no batch axis), the
    predictions (class names and confidences), and an attribution of each for its own predicted class."""

    index: int
    eps: float
    label: str
    original: str
    adversarial: str
    confidence: tuple[float, float]
    x: torch.Tensor
    x_adv: torch.Tensor
    attribution: torch.Tensor
    attribution_adv: torch.Tensor
    method: str

    @property
    def flipped(self) -> bool:
        """Whether the attack changed the prediction."""
        return self.original != self.adversarial

    @property
    def max_change(self) -> float:
        """The largest change of any input value (at most ε)."""
        return float((self.x_adv - self.x).abs().max())

    def rows(self) -> tuple[Any, Any]:
        """``(inputs, attributions)``: each a (2, F) numpy array, the original first (flattened; for tables)."""
        return (torch.stack([self.x.reshape(-1), self.x_adv.reshape(-1)]).cpu().numpy(),
                torch.stack([self.attribution.reshape(-1), self.attribution_adv.reshape(-1)]).cpu().numpy())


def flip_view(model: torch.nn.Module, ds: Any, index: int, eps: float, *, method: str = "fgsm", steps: int = 10,
              split: str = "test", attribution: str = "integrated_gradients", **options: Any) -> FlipView:
    """Attack sample ``index`` of a split at ``eps`` (as :func:`model_robustness` does) and attribute both the
    original and the adversarial input (:func:`builder.interpret.attributions.explain`, each for its predicted
    class; ``options`` go to ``explain``, e.g. ``n_steps``).

    Raises:
        ExplainError: an index outside the split, token inputs, bad ε or method.
    """
    from builder.interpret.attributions import explain  # lazy: heavy (captum)

    data = getattr(ds, split)
    if not 0 <= int(index) < len(data):
        raise ExplainError(f"the sample index is in [0, {len(data) - 1}]; received {index}. Fix: pick a listed one")
    task = ds.info.task
    x, y = data.X[int(index):int(index) + 1], data.y[int(index):int(index) + 1]
    adv = attack(model, x, y, float(eps), method=method, steps=steps, bounds=input_bounds(ds.train.X), task=task)
    pair = torch.cat([x, adv])  # (2, ...)
    fwd = _forward(model, task)
    model.eval()
    with torch.no_grad():
        probs = torch.softmax(fwd(pair), 1)
    pred = probs.argmax(1)
    exp = explain(model, pair, attribution, target=None, **options)
    names = list(ds.info.class_names or [])

    def label(i: int) -> str:
        return names[i] if 0 <= i < len(names) else str(i)

    return FlipView(int(index), float(eps), label(int(y.reshape(-1)[0])), label(int(pred[0])), label(int(pred[1])),
                    (float(probs[0, pred[0]]), float(probs[1, pred[1]])), x[0].detach(), adv[0].detach(),
                    exp.attributions[0].detach(), exp.attributions[1].detach(), attribution)


def robustness_figure(report: RobustnessReport | dict):
    """Accuracy against ε (a line with markers; the flip count in the hover)."""
    import plotly.graph_objects as go  # lazy: heavy (plotly)

    r = report.to_dict() if isinstance(report, RobustnessReport) else dict(report)
    counts = [f.get("count", 0) for f in r.get("flips", [])]
    counts = [plotly_text(n) if isinstance(n, str) else n for n in counts]  # a number; a report file may say else
    attack = plotly_text(str(r["attack"]).upper())
    fig = go.Figure(go.Scatter(x=r["eps"], y=r["accuracy"], mode="lines+markers", name=attack,
                               customdata=counts, hovertemplate="ε %{x}<br>accuracy %{y:.3f}<br>flipped "
                               "%{customdata}<extra></extra>"))
    fig.update_layout(xaxis_title="ε (L∞, input units)", yaxis_title=f"{plotly_text(r.get('split', 'test'))} accuracy",
                      yaxis_range=[0, 1.02], height=320, margin=dict(l=40, r=20, t=30, b=40),
                      title=f"{attack} robustness")
    return fig
