"""Training memory of a graph: what one float32 training step holds at its peak, and the batch size that fits.

The estimate follows what autograd actually keeps rather than every intermediate a layer could create:

- **weights**: parameters and buffers; **gradients**: one value per parameter; **optimizer state**: Adam and
  AdamW keep two values per parameter, SGD with momentum and RMSprop one, plain SGD none;
- **saved per sample**: each node's output counts once if its own backward needs it (ReLU, Sigmoid, Softmax:
  ``saves="output"``) or a consumer's does (a convolution, Linear or norm after it: ``saves="input"``); views,
  sums and concatenations keep nothing. On top, each layer's ``Cost.work`` (pooling indices, dropout masks,
  attention weights, recurrent gates). Convolutions keep no unfolded (im2col) copy: cuDNN and oneDNN do not
  materialise one;
- **transient per sample**: during the backward pass the gradient of one node's output and of its input are
  alive together, with the gradients of what the node saved between them (``Cost.backward``: an Op node's
  attention weights) or its kernel's own copies (a CPU convolution's channels padded to 16): the largest such set;
- **the loss** (``loss``, a :func:`builder.training.metrics.loss_kind`): the training loop holds the output until
  the step ends, and at the loss's backward :data:`LOSS_VALUES` more of its size are alive (cross-entropy: its
  log-softmax and two gradients: a language model's (T, vocabulary) logits four times);
- **a frozen model** (``frozen``: a distillation's teacher): its weights, and its forward without gradients (the
  largest pair of tensors alive together, and its output, kept as the student's target).

The peak is the larger of the two phases of a step: forward+backward (weights, gradients, saved and transient
activations) and the optimizer step (weights, gradients, optimizer state and the step's temporaries). The
figures are checked against measured peaks (``bench/bench_memory.py``: the CPU allocator's peak and
``torch.cuda.max_memory_allocated``) for every template and ResNet-18, VGG-11, ViT-tiny and an LSTM at full size.

>>> from builder.graph.architectures import build
>>> from builder.graph.shapes import infer_shapes
>>> report = infer_shapes(build("resnet18").graph)  # 224×224 images
>>> cpu, gpu = training_memory(report, 64), training_memory(report, 64, device="cuda")
>>> round(cpu.peak / 2**30, 1), round(gpu.peak / 2**30, 1), gpu.fitting_batch(2 * 2**30)
(1.8, 2.9, 43)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from builder.graph.registry import get_spec, has_spec
from builder.graph.report import ShapeReport, human_bytes

#: Optimizer state values per parameter.
OPTIMIZER_STATE = {"adam": 2, "adamw": 2, "sgd": 1, "rmsprop": 1, "none": 0}
#: Temporaries of one optimizer step, in values per parameter (torch's foreach Adam: sqrt of the second moment).
OPTIMIZER_TEMPS = {"adam": 1, "adamw": 1, "sgd": 0, "rmsprop": 1, "none": 0}
_VALUE = 4  # float32 bytes
#: Bytes CUDA's libraries take from the allocator in every process that trains (cuBLAS workspaces), measured.
CUDA_RUNTIME = 64 * 2**20
#: On CUDA the backward pass holds more beside the saved activations (gradient buffers of several layers at
#: once, cuDNN workspaces): activations × this factor matched measured peaks on an H100 (bench/bench_memory.py).
CUDA_ACTIVATION_FACTOR = 1.6
#: Values per output value a loss keeps alive at its backward beside the output (measured with torch's profiler):
#: cross-entropy its log-softmax and the gradients of both, the others a difference and a gradient.
LOSS_VALUES = {"ce": 3, "tok": 3, "bce": 2, "reg": 2}


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of one training step at ``batch_size``; see the module docstring for what each part counts."""

    batch_size: int
    device: str
    runtime: int
    weights: int
    gradients: int
    optimizer: int
    step_temporaries: int
    saved_per_sample: int
    transient_per_sample: int

    @property
    def per_sample(self) -> int:
        """Activation bytes that grow with each sample of the batch."""
        return self.saved_per_sample + self.transient_per_sample

    def forward_backward(self, batch_size: int | None = None) -> int:
        """Bytes held at the peak of the forward and backward passes."""
        b = self.batch_size if batch_size is None else batch_size
        return self.runtime + self.weights + self.gradients + b * self.per_sample

    @property
    def step(self) -> int:
        """Bytes held during the optimizer step (activations are freed by then)."""
        return self.runtime + self.weights + self.gradients + self.optimizer + self.step_temporaries

    def peak_at(self, batch_size: int) -> int:
        """The step's peak at another batch size."""
        return max(self.forward_backward(batch_size), self.step)

    @property
    def peak(self) -> int:
        """The step's peak at ``batch_size``."""
        return self.peak_at(self.batch_size)

    def fitting_batch(self, limit: int) -> int:
        """The largest batch size whose peak stays within ``limit`` bytes (0: not even one sample fits)."""
        if self.step > limit:
            return 0
        room = limit - self.runtime - self.weights - self.gradients
        return max(0, room // self.per_sample) if self.per_sample else 1 << 30

    def describe(self) -> str:
        """One line for messages: the peak and its largest parts."""
        acts = self.batch_size * self.per_sample
        return (f"{human_bytes(self.peak)} at batch {self.batch_size} (weights {human_bytes(self.weights)}, "
                f"gradients {human_bytes(self.gradients)}, optimizer {human_bytes(self.optimizer)}, "
                f"activations {human_bytes(acts)})")


def _kept(report: ShapeReport, cuda: bool = False) -> tuple[int, int]:
    """(values saved per sample, transient values per sample) from the analysed nodes."""
    consumers: dict[str, list[str]] = {}
    for target, edges in report.in_edges.items():
        for edge, _port in edges:
            consumers.setdefault(edge.source, []).append(target)
    saved = transient = 0
    for nid, info in report.nodes.items():
        if not info.outputs:
            continue
        out = sum(t.numel * (2 if t.kind == "tokens" else 1) for t in info.outputs.values())  # token ids: int64
        mine = get_spec(info.type).saves if has_spec(info.type) else "input"
        keeps = mine in ("output", "both") or any(
            has_spec(report.nodes[c].type) and get_spec(report.nodes[c].type).saves in ("input", "both")
            for c in consumers.get(nid, ()) if c in report.nodes) or not has_spec(info.type)
        work = info.cuda_work_values if cuda and info.cuda_work_values is not None else info.work_values
        back = info.cuda_backward_values if cuda and info.cuda_backward_values is not None else info.backward_values
        saved += (out if keeps else 0) + work
        transient = max(transient, out + sum(t.numel for t in info.inputs) + back)
    return saved, transient


def _outputs(report: ShapeReport) -> int:
    """Values per sample of the model's outputs (each output node's first port, as the compiled model returns)."""
    return sum(report.nodes[n].type_out.numel for n in report.output_nodes if report.nodes[n].type_out is not None)


def training_memory(report: ShapeReport, batch_size: int = 64, optimizer: str = "adam", device: str = "cpu", *,
                    loss: str | None = None, frozen: ShapeReport | None = None) -> MemoryEstimate:
    """The :class:`MemoryEstimate` of one float32 training step of an analysed graph.

    Args:
        report: the graph's :class:`~builder.graph.report.ShapeReport` (one analysis pass, reused).
        batch_size: samples per step.
        optimizer: the run's optimizer name (its state size); unknown names count as Adam.
        device: ``cpu`` or ``cuda`` (``cuda:1`` too): CUDA adds its libraries' workspaces and a measured factor on
            the activations (:data:`CUDA_RUNTIME`, :data:`CUDA_ACTIVATION_FACTOR`).
        loss: the loss on the outputs (``ce``, ``tok``, ``bce``, ``reg``; :data:`LOSS_VALUES`), None for none (a
            graph whose loss nodes are drawn counts them as nodes).
        frozen: the analysis of a frozen model run forward without gradients each step (a distillation's teacher).
    """
    cuda = str(device).startswith("cuda")
    saved, transient = _kept(report, cuda)
    buffers = report.total_buffers
    if loss is not None:
        out = _outputs(report)
        saved, transient = saved + out, max(transient, LOSS_VALUES.get(loss, 3) * out)
    if frozen is not None:
        buffers += frozen.total_params + frozen.total_buffers
        transient = max(transient, _kept(frozen, cuda)[1]) + _outputs(frozen)
    return counted_memory(report.total_params, saved, batch_size, optimizer, device, transient=transient,
                          buffers=buffers)


def counted_memory(params: int, saved: int, batch_size: int = 64, optimizer: str = "adam", device: str = "cpu", *,
                   transient: int = 0, buffers: int = 0) -> MemoryEstimate:
    """The :class:`MemoryEstimate` from counts alone: ``params`` parameter values, ``saved`` values kept per sample
    for the backward pass, ``transient`` values alive together per sample during it, ``buffers`` fixed values
    (:func:`training_memory` counts them from a graph; a model library's entry from its config).

    >>> counted_memory(1000, 10, batch_size=4).peak  # weights, gradients, Adam's two states and a temporary
    20000
    """
    cuda = str(device).startswith("cuda")
    if cuda:
        saved, transient = int(saved * CUDA_ACTIVATION_FACTOR), int(transient * CUDA_ACTIVATION_FACTOR)
    values = params * _VALUE
    return MemoryEstimate(
        batch_size=batch_size, device="cuda" if cuda else "cpu", runtime=CUDA_RUNTIME if cuda else 0,
        weights=values + buffers * _VALUE, gradients=values,
        optimizer=OPTIMIZER_STATE.get(optimizer, 2) * values, step_temporaries=OPTIMIZER_TEMPS.get(optimizer, 1) * values,
        saved_per_sample=saved * _VALUE, transient_per_sample=transient * _VALUE)


def device_memory(device: str = "cpu") -> int:
    """Bytes one training run may use on ``device``: the free memory a CUDA GPU reports, or half the host's RAM.

    Torch is imported only for a CUDA device; a CUDA device that is not there counts as the host.
    """
    if str(device).startswith("cuda"):
        import torch  # lazy: heavy (torch)

        if torch.cuda.is_available():
            index = int(str(device).split(":")[1]) if ":" in str(device) else torch.cuda.current_device()
            if 0 <= index < torch.cuda.device_count():
                return int(torch.cuda.mem_get_info(index)[0])
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):  # not POSIX: assume a small machine
        return 4 * 2**30
