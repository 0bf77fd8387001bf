"""Standard architectures at full size as LayerLab projects: ResNet-18, VGG-11, ViT-tiny, an LSTM classifier.

The shipped templates are small enough to train on the bundled datasets in seconds; these are the networks
courses and papers name, drawn with the same layers, at the sizes they are used at (3×224×224 images by
default). ``layerlab arch NAME`` writes one as a project file; the size-estimate benchmark
(``bench/bench_memory.py``) compares their estimated training memory with measured peaks.

>>> from builder.graph.architectures import build
>>> from builder.graph.shapes import infer_shapes
>>> report = infer_shapes(build("resnet18").graph)
>>> report.ok, report.total_params
(True, 11689512)
>>> infer_shapes(build("vgg11", input_shape=(3, 32, 32), classes=10).graph).ok
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from builder.errors import LayerLabError
from builder.graph.layout import auto_layout
from builder.graph.project import Edge, Graph, Node, Project


class _Drawer:
    """Adds nodes in a chain: ``add`` connects the new node to the last one (or to ``src``)."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.edges: list[Edge] = []
        self.last = ""

    def add(self, nid: str, type_: str, src: str | Sequence[str] | None = None, **params: Any) -> str:
        self.nodes.append(Node(id=nid, type=type_, params=params))
        srcs = [self.last] if src is None else [src] if isinstance(src, str) else list(src)
        for i, s in enumerate(s for s in srcs if s):
            self.edges.append(Edge(source=s, target=nid, target_port=str(i) if len(srcs) > 1 else None))
        self.last = nid
        return nid

    def graph(self) -> Graph:
        return auto_layout(Graph(nodes=self.nodes, edges=self.edges))


def _conv_bn(d: _Drawer, name: str, out: int, k: int, stride: int = 1, relu: bool = True,
             src: str | None = None) -> str:
    d.add(f"{name}_conv", "Conv2d", src, out_channels=out, kernel_size=k, stride=stride, padding=k // 2, bias=False)
    d.add(f"{name}_bn", "BatchNorm2d")
    return d.add(f"{name}_relu", "ReLU") if relu else d.last


def resnet18(input_shape: Sequence[int] = (3, 224, 224), classes: int = 1000) -> Graph:
    """ResNet-18 (He et al. 2016) as torchvision builds it: 11,689,512 parameters at 1000 classes."""
    d = _Drawer()
    d.add("image", "Input", shape=list(input_shape), modality="image")
    _conv_bn(d, "stem", 64, 7, 2)
    x = d.add("stem_pool", "MaxPool2d", kernel_size=3, stride=2, padding=1)
    channels = 64
    for stage, width in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            name = f"layer{stage}_{block}"
            stride = 2 if stage > 1 and block == 0 else 1
            _conv_bn(d, f"{name}_a", width, 3, stride, src=x)
            y = _conv_bn(d, f"{name}_b", width, 3, relu=False)
            skip = x
            if stride != 1 or channels != width:
                skip = _conv_bn(d, f"{name}_down", width, 1, stride, relu=False, src=x)
            d.add(f"{name}_add", "Add", [y, skip])
            x = d.add(f"{name}_relu", "ReLU")
            channels = width
    d.add("pool", "AdaptiveAvgPool2d", x, output_size=1)
    d.add("flatten", "Flatten")
    d.add("fc", "Linear", out_features=classes)
    return d.graph()


def vgg11(input_shape: Sequence[int] = (3, 224, 224), classes: int = 1000) -> Graph:
    """VGG-11 (configuration A, Simonyan & Zisserman 2015) without batch norm: 132,863,336 parameters."""
    d = _Drawer()
    d.add("image", "Input", shape=list(input_shape), modality="image")
    cfg = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")
    i = 0
    for v in cfg:
        if v == "M":
            d.add(f"pool{i}", "MaxPool2d", kernel_size=2, stride=2)
        else:
            i += 1
            d.add(f"conv{i}", "Conv2d", out_channels=v, kernel_size=3, padding=1)
            d.add(f"relu{i}", "ReLU")
    d.add("avgpool", "AdaptiveAvgPool2d", output_size=7)
    d.add("flatten", "Flatten")
    for j, width in enumerate((4096, 4096), start=1):
        d.add(f"fc{j}", "Linear", out_features=width)
        d.add(f"fc{j}_relu", "ReLU")
        d.add(f"fc{j}_drop", "Dropout", p=0.5)
    d.add("head", "Linear", out_features=classes)
    return d.graph()


def vit_tiny(input_shape: Sequence[int] = (3, 224, 224), classes: int = 1000, patch: int = 16, dim: int = 192,
             depth: int = 12, heads: int = 3) -> Graph:
    """ViT-Ti/16 (Touvron et al. 2021): patch embedding, learned positions, 12 pre-norm encoder layers, mean pooling.

    The class token of the original is replaced by mean pooling over the patches (as in many ViT variants).
    """
    d = _Drawer()
    d.add("image", "Input", shape=list(input_shape), modality="image")
    d.add("patches", "Conv2d", out_channels=dim, kernel_size=patch, stride=patch)
    d.add("tokens", "Flatten", start_dim=2)
    d.add("to_seq", "Permute", dims=[0, 2, 1])
    n = (input_shape[1] // patch) * (input_shape[2] // patch)
    d.add("positions", "PositionalEncoding", kind="learned", max_len=n)
    for i in range(depth):
        d.add(f"block{i}", "TransformerEncoderLayer", nhead=heads, dim_feedforward=4 * dim, dropout=0.0,
              activation="gelu", norm_first=True)
    d.add("norm", "LayerNorm")
    d.add("pool", "Mean", dim=1)
    d.add("head", "Linear", out_features=classes)
    return d.graph()


def lstm_classifier(seq_len: int = 256, vocab: int = 20000, classes: int = 2, embed: int = 256,
                    hidden: int = 512, layers: int = 2) -> Graph:
    """A two-layer bidirectional LSTM text classifier over token ids (last time step → Linear)."""
    d = _Drawer()
    d.add("tokens", "Input", shape=[seq_len], modality="tokens", vocab_size=vocab)
    d.add("embed", "Embedding", embedding_dim=embed)
    d.add("lstm", "LSTM", hidden_size=hidden, num_layers=layers, bidirectional=True, output_mode="last")
    d.add("head", "Linear", out_features=classes)
    return d.graph()


def lstm_language_model(seq_len: int = 64, vocab: int = 10000, embed: int = 256, hidden: int = 512) -> Graph:
    """An LSTM language model over token ids: one logit per token of the vocabulary at every step.

    >>> [n.type for n in lstm_language_model(16, 300, 16, 32).nodes]
    ['Input', 'Embedding', 'LSTM', 'Linear']
    """
    d = _Drawer()
    d.add("tokens", "Input", shape=[seq_len], modality="tokens", vocab_size=vocab)
    d.add("embed", "Embedding", embedding_dim=embed)
    d.add("lstm", "LSTM", hidden_size=hidden, output_mode="all")
    d.add("head", "Linear", out_features=vocab)
    return d.graph()


ARCHITECTURES: dict[str, tuple[str, Callable[..., Graph]]] = {
    "resnet18": ("ResNet-18", resnet18),
    "vgg11": ("VGG-11", vgg11),
    "vit_tiny": ("ViT-tiny/16", vit_tiny),
    "lstm": ("Bidirectional LSTM classifier", lstm_classifier),
    "lstm_lm": ("LSTM language model", lstm_language_model),
}


def build(name: str, **kwargs: Any) -> Project:
    """The architecture ``name`` (a key of :data:`ARCHITECTURES`) as a project; ``kwargs`` go to its builder."""
    if name not in ARCHITECTURES:
        raise LayerLabError(f"unknown architecture; received: {name!r}. Fix: use one of {', '.join(ARCHITECTURES)}")
    title, fn = ARCHITECTURES[name]
    graph = fn(**kwargs)
    return Project(name=title, description=(fn.__doc__ or "").strip().splitlines()[0], graph=graph,
                   training={"epochs": 1, "batch_size": 64, "optimizer": "adam", "lr": 0.001})
