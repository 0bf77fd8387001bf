"""Plain torch.nn models for the import/export round-trip tests (written without LayerLab).

Each class has ``example_inputs()`` (batch of 2), which ``layerlab import file.py:Class`` also uses.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class LeNet(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.pool2 = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, classes)

    def forward(self, x):
        x = self.pool1(torch.relu(self.conv1(x)))
        x = self.pool2(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))

    def example_inputs(self):
        return (torch.randn(2, 1, 28, 28),)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x if self.downsample is None else self.downsample(x)
        return self.relu(out + short)


class SmallResNet(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.layer1 = BasicBlock(16, 16)
        self.layer2 = BasicBlock(16, 32, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, classes)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))

    def example_inputs(self):
        return (torch.randn(2, 3, 16, 16),)


class BiLSTMClassifier(nn.Module):
    def __init__(self, vocab: int = 50, classes: int = 3):
        super().__init__()
        self.embed = nn.Embedding(vocab, 16)
        self.lstm = nn.LSTM(16, 24, num_layers=2, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(48, classes)

    def forward(self, tokens):
        _, (h, _) = self.lstm(self.embed(tokens))
        return self.fc(torch.cat([h[-2], h[-1]], dim=1))

    def example_inputs(self):
        return (torch.randint(0, 50, (2, 12)),)


class TransformerClassifier(nn.Module):
    def __init__(self, vocab: int = 40, classes: int = 5):
        super().__init__()
        self.embed = nn.Embedding(vocab, 32)
        layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.fc = nn.Linear(32, classes)

    def forward(self, tokens):
        return self.fc(self.encoder(self.embed(tokens)).mean(1))

    def example_inputs(self):
        return (torch.randint(0, 40, (2, 10)),)


class MLP(nn.Module):
    def __init__(self, features: int = 8, classes: int = 3):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 32), nn.Tanh(),
                                 nn.Linear(32, classes))

    def forward(self, x):
        return self.net(x)

    def example_inputs(self):
        return (torch.randn(2, 8),)


class CausalSelfAttention(nn.Module):
    """nanoGPT's attention written out: q, k, v from one Linear, heads by view/transpose, a causal mask by
    ``masked_fill(-inf)`` on a ``tril`` buffer (``where=False``) or ``torch.where`` on a ``tril`` built per call."""

    def __init__(self, dim: int, heads: int, steps: int, where: bool = False):
        super().__init__()
        self.heads, self.where = heads, where
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.register_buffer("tril", torch.tril(torch.ones(steps, steps)).view(1, 1, steps, steps))

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q = q.view(B, T, self.heads, C // self.heads).transpose(1, 2)  # (B, heads, T, D)
        k = k.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        v = v.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))  # (B, heads, T, T)
        if self.where:
            keep = torch.tril(torch.ones(T, T, dtype=torch.bool, device=x.device))
            att = torch.where(keep, att, float("-inf"))
        else:
            att = att.masked_fill(self.tril[:, :, :T, :T] == 0, float("-inf"))
        y = F.softmax(att, dim=-1) @ v  # (B, heads, T, D)
        return self.proj(y.transpose(1, 2).contiguous().view(B, T, C))


class GPTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, steps: int, where: bool = False):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads, steps, where)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    """A GPT-style decoder-only language model in plain PyTorch (nanoGPT's structure, tiny sizes): one block
    masks with ``masked_fill`` on a buffer, the other with ``torch.where``."""

    def __init__(self, vocab: int = 30, dim: int = 16, heads: int = 2, steps: int = 8):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.randn(1, steps, dim) * 0.1)
        self.blocks = nn.Sequential(GPTBlock(dim, heads, steps), GPTBlock(dim, heads, steps, where=True))
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab)

    def forward(self, tokens):
        x = self.embed(tokens) + self.pos[:, : tokens.size(1)]
        return self.head(self.ln(self.blocks(x)))  # (B, T, vocab)

    def example_inputs(self):
        return (torch.randint(0, 30, (2, 8)),)


MODELS = {"lenet": LeNet, "resnet": SmallResNet, "bilstm": BiLSTMClassifier, "transformer": TransformerClassifier,
          "mlp": MLP, "gpt": TinyGPT}


def build(name: str, seed: int = 0) -> nn.Module:
    """A model with seeded weights and non-trivial BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    m = MODELS[name]()
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 1.5)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.2, 0.2)
    return m.eval()
