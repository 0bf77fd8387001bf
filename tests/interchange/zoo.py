"""LayerLab's own model zoo (issue 17): small, ordinary PyTorch models in plain torch.nn, written the way a
practitioner writes them, for the import tests (``test_zoo_import.py``) and ``bench/import_coverage.py``.

Every model is tiny (a few thousand parameters at most, small inputs) so importing all of them from three
sources stays cheap. ``ZOO`` maps a name to ``(factory, input shape with batch)``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812


class CnnFlatten(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(F.relu(self.conv(x))), 1))


class CnnView(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        h = F.relu(self.bn(self.conv(x)))
        return self.fc(h.view(h.size(0), -1))


class MobileBlock(nn.Module):
    """Depthwise-separable block with ReLU6 and a residual."""

    def __init__(self):
        super().__init__()
        self.expand = nn.Conv2d(4, 8, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.project = nn.Conv2d(8, 4, 1, bias=False)

    def forward(self, x):
        h = F.relu6(self.bn1(self.expand(x)))
        h = F.relu6(self.bn2(self.dw(h)))
        return x + self.project(h)


class UNetSkip(nn.Module):
    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(2, 4, 3, stride=2, padding=1)
        self.mid = nn.Conv2d(4, 4, 3, padding=1)
        self.up = nn.ConvTranspose2d(4, 2, 2, stride=2)
        self.out = nn.Conv2d(4, 1, 1)

    def forward(self, x):
        h = F.relu(self.mid(F.relu(self.down(x))))
        return self.out(torch.cat([x, self.up(h)], dim=1))


class Fire(nn.Module):
    """SqueezeNet fire module: squeeze 1x1, expand 1x1 and 3x3, concatenated."""

    def __init__(self):
        super().__init__()
        self.squeeze = nn.Conv2d(4, 2, 1)
        self.e1 = nn.Conv2d(2, 4, 1)
        self.e3 = nn.Conv2d(2, 4, 3, padding=1)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        s = F.relu(self.squeeze(x))
        h = torch.cat([F.relu(self.e1(s)), F.relu(self.e3(s))], 1)
        return self.head(F.adaptive_avg_pool2d(h, 1).flatten(1))


class GruLast(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(4, 6, batch_first=True)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        y, _ = self.gru(x)
        return self.fc(y[:, -1])


class LstmHidden(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 6, batch_first=True)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.fc(h[-1])


class BiLstm(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 5, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(10, 3)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.fc(y.mean(1))


class TransformerCls(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 8)
        self.enc = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(self.enc(self.proj(x)).mean(dim=1))


class ViTTiny(nn.Module):
    """Patch embedding, learned class token and position parameter, one encoder layer, class-token head."""

    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(1, 8, 4, stride=4)
        self.cls = nn.Parameter(torch.randn(1, 1, 8) * 0.1)
        self.pos = nn.Parameter(torch.randn(1, 5, 8) * 0.1)
        self.enc = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        p = self.patch(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(x.shape[0], -1, -1), p], dim=1) + self.pos
        return self.head(self.enc(t)[:, 0])


class AttnPool(nn.Module):
    """Attention pooling: a softmax over time weights the sum of the steps."""

    def __init__(self):
        super().__init__()
        self.score = nn.Linear(4, 1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        w = torch.softmax(self.score(x), dim=1)
        return self.fc((w * x).sum(dim=1))


class MhaSeparate(nn.Module):
    """nn.MultiheadAttention with kdim/vdim ≠ embed_dim (separate q/k/v projections)."""

    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, kdim=6, vdim=6, batch_first=True)
        self.kv = nn.Linear(8, 6)

    def forward(self, x):
        kv = self.kv(x)
        y, _ = self.attn(x, kv, kv, need_weights=False)
        return y


class InstanceNormNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.norm = nn.InstanceNorm2d(4, affine=True)

    def forward(self, x):
        return F.relu(self.norm(self.conv(x)))


class GroupNormNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.norm = nn.GroupNorm(2, 4)

    def forward(self, x):
        return F.silu(self.norm(self.conv(x)))


class LayerNormMlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.norm = nn.LayerNorm(8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(F.gelu(self.norm(self.fc1(x))))


class UpsampleNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x):
        return self.conv(self.up(x))


class BilinearNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)

    def forward(self, x):
        return F.interpolate(self.conv(x), scale_factor=2, mode="bilinear", align_corners=False)


class PixelShuffleNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x):
        return self.shuffle(self.conv(x))


class Conv1dSeq(nn.Module):
    """1-D convolution over (B, T, C) data: permute to channels first and back."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 3, padding=1)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        h = F.relu(self.conv(x.permute(0, 2, 1))).permute(0, 2, 1)
        return self.fc(h)


class ActivationsMlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(5, 8)
        self.fc2 = nn.Linear(8, 8)
        self.fc3 = nn.Linear(8, 3)

    def forward(self, x):
        h = F.hardswish(self.fc1(x))
        h = F.mish(self.fc2(h)) + F.relu6(h)
        return self.fc3(F.gelu(h, approximate="tanh"))


class SqueezeUnsqueeze(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 3, 3, padding=1)
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        h = self.conv(x.unsqueeze(1))
        return self.fc(h.mean(-1, keepdim=True).squeeze(-1))


class ResidualMlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 6)
        self.fc2 = nn.Linear(6, 6)
        self.out = nn.Linear(6, 2)

    def forward(self, x):
        return self.out(F.elu(x + self.fc2(F.relu(self.fc1(x)))))


class EmbeddingBag(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 6)
        self.fc = nn.Linear(6, 2)

    def forward(self, ids):
        return self.fc(self.emb(ids).mean(1))


class ScaleShift(nn.Module):
    """Arithmetic with constants and a learned per-feature scale."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, 6))
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        return self.fc(torch.sqrt((x * self.scale - 0.5) ** 2 + 1.0) / 2.0)


class DilatedConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3, dilation=2, padding=2)
        self.conv2 = nn.Conv2d(3, 2, 3, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return self.pool(torch.tanh(self.conv2(F.leaky_relu(self.conv1(x), 0.1)))).flatten(1)


class GatedSeq(nn.Module):
    """GLU-style gating and LogSoftmax over classes, taking the last step."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 8)
        self.out = nn.Linear(4, 3)

    def forward(self, x):
        a, b = self.fc(x).chunk(2, dim=-1)
        return F.log_softmax(self.out((a * torch.sigmoid(b))[:, -1]), dim=-1)


class StackedLstmState(nn.Module):
    """A 2-layer LSTM read through ``h[-1]`` (the classic exporter writes one op per layer, states concatenated)."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(4, 5, num_layers=2, batch_first=True)
        self.fc = nn.Linear(10, 2)

    def forward(self, x):
        y, (h, _) = self.rnn(x)
        return self.fc(torch.cat([y[:, -1], h[-1]], -1))


class ReluRnn(nn.Module):
    """nn.RNN with ReLU (the dynamo exporter and .pt2 unroll it step by step)."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(4, 6, nonlinearity="relu", batch_first=True)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        return self.fc(self.rnn(x)[1][-1])


ZOO: dict[str, tuple[type[nn.Module], tuple[int, ...], torch.dtype]] = {
    "cnn_flatten": (CnnFlatten, (2, 1, 8, 8), torch.float32),
    "cnn_view_bn": (CnnView, (2, 1, 8, 8), torch.float32),
    "mobilenet_block": (MobileBlock, (2, 4, 6, 6), torch.float32),
    "unet_skip": (UNetSkip, (2, 2, 8, 8), torch.float32),
    "squeezenet_fire": (Fire, (2, 4, 6, 6), torch.float32),
    "gru_last_step": (GruLast, (2, 5, 4), torch.float32),
    "lstm_hidden": (LstmHidden, (2, 5, 4), torch.float32),
    "bilstm_mean": (BiLstm, (2, 5, 4), torch.float32),
    "transformer_cls": (TransformerCls, (2, 5, 4), torch.float32),
    "vit_tiny": (ViTTiny, (2, 1, 8, 8), torch.float32),
    "attention_pool": (AttnPool, (2, 5, 4), torch.float32),
    "mha_separate_qkv": (MhaSeparate, (2, 5, 8), torch.float32),
    "instance_norm": (InstanceNormNet, (2, 1, 6, 6), torch.float32),
    "group_norm": (GroupNormNet, (2, 2, 6, 6), torch.float32),
    "layer_norm_gelu": (LayerNormMlp, (2, 6), torch.float32),
    "upsample_nearest": (UpsampleNet, (2, 2, 4, 4), torch.float32),
    "interpolate_bilinear": (BilinearNet, (2, 2, 4, 4), torch.float32),
    "pixel_shuffle": (PixelShuffleNet, (2, 1, 4, 4), torch.float32),
    "conv1d_permute": (Conv1dSeq, (2, 7, 4), torch.float32),
    "activations": (ActivationsMlp, (2, 5), torch.float32),
    "squeeze_unsqueeze": (SqueezeUnsqueeze, (2, 6), torch.float32),
    "residual_mlp": (ResidualMlp, (2, 6), torch.float32),
    "embedding_mean": (EmbeddingBag, (2, 7), torch.int64),
    "scale_shift": (ScaleShift, (2, 6), torch.float32),
    "dilated_conv": (DilatedConv, (2, 1, 9, 9), torch.float32),
    "gated_last_step": (GatedSeq, (2, 5, 4), torch.float32),
    "stacked_lstm_state": (StackedLstmState, (2, 5, 4), torch.float32),
    "relu_rnn": (ReluRnn, (2, 5, 4), torch.float32),
}


def build(name: str) -> tuple[nn.Module, torch.Tensor]:
    """The model (eval mode, seeded weights, non-trivial BatchNorm statistics) and an example input."""
    cls, shape, dtype = ZOO[name]
    torch.manual_seed(0)
    model = cls().eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 20, shape, generator=gen) if dtype == torch.int64 else torch.randn(shape, generator=gen)
    return model, x


SOURCES = ("onnx_classic", "onnx_dynamo", "pt2")


def export(name: str, source: str, folder) -> str:
    """Write the model of ``name`` in one of :data:`SOURCES` under ``folder``; return the path."""
    import warnings
    from pathlib import Path

    model, x = build(name)
    path = Path(folder) / f"{name}.{'pt2' if source == 'pt2' else source.split('_')[1] + '.onnx'}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if source == "onnx_classic":
            torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
        elif source == "onnx_dynamo":
            batch = torch.export.Dim("batch", min=1)
            prog = torch.onnx.export(model, (x,), dynamo=True, dynamic_shapes=({0: batch},), verbose=False,
                                     input_names=["x"], output_names=["y"])
            prog.save(str(path))
        else:
            ep = torch.export.export(model, (x,))
            torch.export.save(ep, str(path))
    return str(path)
