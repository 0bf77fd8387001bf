"""The Build and Runs pages' ``.py`` download runs in the server process (a download button's callable): it may
build the user's graph only on the meta device. Found by instrumenting a live server (every real-tensor aten op
and every ``nn.Module`` call recorded while a browser walked the pages): ``python_source`` -> ``export_python``
-> ``compile_graph`` is the one place the server builds a user's network, and it must stay allocation-free and
forward-free, whatever sizes the graph names."""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from builder.interchange.python_export import python_source


class _RealOps(TorchDispatchMode):
    """Records every aten op that touches a real (non-meta) tensor."""

    def __init__(self):
        super().__init__()
        self.real: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        flat = torch.utils._pytree.tree_leaves((args, kwargs or {}, out))
        if any(isinstance(t, torch.Tensor) and t.device.type != "meta" for t in flat):
            self.real.append(str(func))
        return out


def _wide_graph(width: int) -> dict:
    """An MLP whose hidden Linear holds ``width * width`` weights (576 MB of float32 at 12 000, under the
    default budget of 200 M parameters)."""
    return {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [width]}},
                      {"id": "fc", "type": "Linear", "params": {"out_features": width}},
                      {"id": "act", "type": "ReLU", "params": {}},
                      {"id": "head", "type": "Linear", "params": {"out_features": 2}}],
            "edges": [{"source": "x", "target": "fc"}, {"source": "fc", "target": "act"},
                      {"source": "act", "target": "head"}]}


def test_py_export_builds_on_meta_and_runs_nothing(monkeypatch):
    calls: list[str] = []
    orig = torch.nn.Module.__call__
    monkeypatch.setattr(torch.nn.Module, "__call__",
                        lambda self, *a, **k: (calls.append(type(self).__name__), orig(self, *a, **k))[1])
    mode = _RealOps()
    with mode:
        src = python_source({"graph": _wide_graph(12_000)})
    assert "could not export" not in src and "12000" in src
    assert mode.real == [], f"the .py export touched real tensors in the server process: {mode.real[:5]}"
    assert calls == [], f"the .py export ran modules in the server process: {calls[:5]}"
