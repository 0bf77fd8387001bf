"""Normalisation and pooling recognised as LayerLab layers (ONNX import): BatchNormalization → BatchNorm1d/2d (its
running statistics; the exporter's constant ones and zeros → affine=False), LayerNormalization → LayerNorm,
MaxPool/AveragePool → Max/AvgPool1d/2d, GlobalAveragePool and a ReduceMean over the spatial axes →
AdaptiveAvgPool, a ReduceMean over features → Mean.
"""

from __future__ import annotations

import numpy as np

from builder.interchange.onnx_fold import as_f32, text_of
from builder.interchange.onnx_values import Const, T


class NormPoolOps:
    """Mixin of :class:`~builder.interchange.onnx_import.OnnxImporter`: ``_op_<ONNX op>`` handlers."""

    def _op_BatchNormalization(self, n, ins, a):
        x = ins[0]
        if a.get("training_mode", 0):
            self.bad("BatchNormalization (training mode)", n.name or "BatchNormalization",
                     "the file was exported in training mode (batch statistics, not the running ones): call "
                     "model.eval() and export with training=torch.onnx.TrainingMode.PRESERVE (or the default EVAL with "
                     "do_constant_folding=False, which keeps BatchNorm in the file)")
            return False
        if not isinstance(x, T) or not all(isinstance(v, Const) for v in ins[1:5]):
            return None
        r = self.rank(n.input[0])
        if r not in (2, 3, 4):
            return None
        mom = 1.0 - float(a.get("momentum", 0.9))
        affine = not (ins[1].src is None and ins[2].src is None and np.all(ins[1].value == 1)
                      and not np.any(ins[2].value))  # the exporter's constant ones/zeros: affine=False
        weights = {"running_mean": ins[3].value, "running_var": ins[4].value}
        if affine:
            weights.update(weight=ins[1].value, bias=ins[2].value)
        return T(self.add(self.node_name(n), "BatchNorm2d" if r == 4 else "BatchNorm1d",
                          {"eps": as_f32(a.get("epsilon", 1e-5)), "momentum": round(mom, 6), "affine": affine}, [x],
                          weights))

    def _op_LayerNormalization(self, n, ins, a):
        x, scale = ins[0], ins[1]
        bias = ins[2] if len(ins) > 2 else None
        r = self.rank(n.input[0])
        axis = int(a.get("axis", -1))
        if not isinstance(x, T) or not isinstance(scale, Const) or scale.value.ndim != 1 or \
                self.fixed(scale, n.input) or (isinstance(bias, Const) and self.fixed(bias, n.input)) or \
                (r is not None and axis not in (-1, r - 1)):
            return None
        b = bias.value if isinstance(bias, Const) else np.zeros_like(scale.value)
        affine = not (scale.src is None and (bias is None or bias.src is None) and np.all(scale.value == 1)
                      and not np.any(b))
        if bias is None and affine:
            self.out.notes.append(f"{self.node_name(n)}: LayerNorm without bias imported with a zero bias "
                                  "(one extra trainable vector)")
        return T(self.add(self.node_name(n), "LayerNorm", {"eps": as_f32(a.get("epsilon", 1e-5)),
                                                            "elementwise_affine": affine}, [x],
                          {"weight": scale.value, "bias": b} if affine else None))

    def _pool(self, n, ins, a, kind: str):
        x = ins[0]
        if not isinstance(x, T) or a.get("ceil_mode", 0) or text_of(a.get("auto_pad", "NOTSET")) != "NOTSET":
            return None
        k = list(a["kernel_shape"])
        dims = len(k)
        pads = list(a.get("pads", [0] * 2 * dims))
        if pads[:dims] != pads[dims:] or dims not in (1, 2):
            return None
        if kind == "Avg" and any(pads) and not a.get("count_include_pad", 0):
            return None  # count_include_pad=False: a generic Op node (avg_pool with that flag)
        one = (lambda v: int(v[0])) if dims == 1 else (lambda v: int(v[0]) if v[0] == v[1] else [int(i) for i in v])
        params = {"kernel_size": one(k), "stride": one(a.get("strides", [1] * dims)), "padding": one(pads[:dims])}
        if kind == "Max":
            params["dilation"] = one(a.get("dilations", [1] * dims))
        return T(self.add(self.node_name(n), f"{kind}Pool{dims}d", params, [x]))

    def _op_MaxPool(self, n, ins, a):
        if len(n.output) > 1 and n.output[1] and self.consumers[n.output[1]]:
            return None
        return self._pool(n, ins, a, "Max")

    def _op_AveragePool(self, n, ins, a):
        return self._pool(n, ins, a, "Avg")

    def _op_GlobalAveragePool(self, n, ins, a):
        r = self.rank(n.input[0])
        if not isinstance(ins[0], T) or r not in (3, 4):
            return None
        return T(self.add(self.node_name(n), f"AdaptiveAvgPool{r - 2}d", {"output_size": 1}, [ins[0]]))

    def _op_ReduceMean(self, n, ins, a):
        x = ins[0]
        axes = a.get("axes")
        if len(ins) > 1 and isinstance(ins[1], Const):
            axes = [int(v) for v in ins[1].value.reshape(-1)]
        r = self.rank(n.input[0])
        if not isinstance(x, T) or axes is None or r is None:
            return None
        axes = sorted(ax % r for ax in axes)
        keep = a.get("keepdims", 1)
        if keep and r in (3, 4) and axes == list(range(2, r)):
            return T(self.add(self.node_name(n), f"AdaptiveAvgPool{r - 2}d", {"output_size": 1}, [x]))
        if not keep and len(axes) == 1 and axes[0] > 0:
            return T(self.add(self.node_name(n), "Mean", {"dim": axes[0]}, [x]))
        if axes and axes[0] > 0:
            return T(self.add(self.node_name(n), "Mean", {"dim": axes[0] if len(axes) == 1 else axes,
                                                          "keepdim": bool(keep)}, [x]))
        return None
