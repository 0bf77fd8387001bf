"""The one operator allow-list: the operators an imported program or a generic Op node may call
(``namespace.name``; any overload of an ATen/prims op). The graph layer owns it; the ``.pt2`` reader
(:mod:`builder.interchange.pt2_read`) and the Op node (:mod:`builder.graph.layers.op`) read it.

>>> "aten.linear" in ALLOWED_OPS and "aten.system" not in ALLOWED_OPS
True
"""

from __future__ import annotations

_ATEN = """linear conv1d conv2d conv3d convolution _convolution conv_transpose1d conv_transpose2d conv_transpose3d
batch_norm _native_batch_norm_legit _native_batch_norm_legit_no_training _native_batch_norm_legit_functional
native_batch_norm instance_norm layer_norm native_layer_norm group_norm native_group_norm rms_norm
relu relu6 leaky_relu gelu silu sigmoid tanh hardtanh hardswish hardsigmoid elu selu celu
softplus mish prelu _prelu_kernel glu threshold log_sigmoid_forward
view _unsafe_view reshape permute flatten unflatten transpose t unsqueeze squeeze select slice narrow cat stack
split split_with_sizes chunk unbind expand expand_as repeat contiguous clone alias detach to _to_copy type_as
flip roll pad constant_pad_nd reflection_pad1d reflection_pad2d replication_pad1d replication_pad2d
index_select gather index embedding one_hot
mean sum amax amin max min var std var_mean argmax argmin prod logsumexp cumsum norm linalg_vector_norm
add sub rsub mul div pow sqrt rsqrt exp log log1p erf abs neg reciprocal clamp clamp_min clamp_max maximum
minimum where sign floor ceil round square sin cos
eq ne lt le gt ge logical_not logical_and logical_or bitwise_not masked_fill tril triu
softmax _softmax log_softmax _log_softmax
dropout native_dropout feature_dropout alpha_dropout feature_alpha_dropout
max_pool1d max_pool2d max_pool3d max_pool2d_with_indices avg_pool1d avg_pool2d avg_pool3d adaptive_avg_pool1d
adaptive_avg_pool2d adaptive_avg_pool3d _adaptive_avg_pool2d adaptive_max_pool1d adaptive_max_pool2d
matmul bmm mm addmm baddbmm einsum lstm gru rnn_tanh rnn_relu
scaled_dot_product_attention _scaled_dot_product_flash_attention_for_cpu _native_multi_head_attention
zeros ones full zeros_like ones_like full_like empty arange new_zeros new_ones new_full scalar_tensor
lift_fresh_copy upsample_nearest2d upsample_bilinear2d pixel_shuffle pixel_unshuffle upsample_nearest1d upsample_linear1d tan
sym_size sym_numel sym_stride sym_storage_offset _assert_scalar sym_constrain_range_for_size
_assert_tensor_metadata"""
#: In-place twins of allowed operators that torch.export's program keeps (``nn.ReLU(inplace=True)``'s ``relu_``,
#: ``MultiheadAttention``'s float mask from ``zeros_like(..).masked_fill_``, a model's ``x += y``): accepted in an
#: imported program only, which is converted (functionalised) before anything runs. An Op node on the canvas
#: calls out-of-place operators only: an in-place one would change a tensor another node also reads.
_ATEN_INPLACE = """relu_ relu6_ hardtanh_ leaky_relu_ elu_ celu_ selu_ silu_ mish_ gelu_ hardswish_ hardsigmoid_
sigmoid_ tanh_ threshold_ dropout_ feature_dropout_ alpha_dropout_ feature_alpha_dropout_ masked_fill_ add_ sub_
mul_ div_ clamp_ clamp_min_ clamp_max_ neg_ abs_ sqrt_ exp_ pow_ tril_ triu_"""
_PRIMS = "convert_element_type broadcast_in_dim squeeze"
_OPERATOR = "getitem add sub mul floordiv mod neg truediv eq ne lt le gt ge"
_TORCH_SYM = "sym_max sym_min sym_not sym_float sym_int sym_ite"
ALLOWED_OPS: frozenset[str] = frozenset(
    [f"aten.{n}" for n in _ATEN.split()] + [f"prims.{n}" for n in _PRIMS.split()]
    + [f"_operator.{n}" for n in _OPERATOR.split()] + [f"torch.{n}" for n in _TORCH_SYM.split()])
"""Operators an Op node and an uploaded program may call (``namespace.name``; any overload of an ATen/prims op)."""
PROGRAM_INPLACE_OPS: frozenset[str] = frozenset(f"aten.{n}" for n in _ATEN_INPLACE.split())
"""In-place operators an uploaded program may also call (never an Op node).

>>> "aten.masked_fill_" in PROGRAM_INPLACE_OPS and "aten.masked_fill_" not in ALLOWED_OPS
True
>>> all(op[:-1] in ALLOWED_OPS for op in PROGRAM_INPLACE_OPS)  # each the twin of an allowed operator
True
"""


__all__ = ["ALLOWED_OPS", "PROGRAM_INPLACE_OPS"]
