"""Language model (issue 31): the ``gpt`` template trained by LayerLab against the same network written by hand.

Data: ``text_corpus`` (Python standard-library docstrings, byte-level BPE of 1,000 tokens learned on the training
part, blocks of 32 tokens; the split is by position, so validation text follows the training text). Both models
read the very same tensors (LayerLab's prepared dataset).

* **LayerLab**: the ``gpt`` template (token + learned position embeddings of 64, two pre-norm causal Transformer
  encoder layers with 4 heads, feed-forward 256, GELU, dropout 0.1, a final LayerNorm, a Linear head), trained by
  LayerLab's trainer with the template's settings (AdamW, lr 0.003, batch 32, no weight decay, no schedule) for N
  epochs without early stopping.
* **Hand-written**: the same architecture written in plain PyTorch in the nanoGPT manner (one Linear for q, k, v,
  ``scaled_dot_product_attention(is_causal=True)``, dropout on the attention weights, after the projection, after
  the GELU and after the second feed-forward Linear), the same parameter count, optimiser, learning rate, batch
  size and epochs; its own training loop (shuffled batches, cross-entropy over every position).
* **Unigram**: each validation token predicted by its training frequency (add-one smoothed).

Figure: validation perplexity (``exp`` of the mean cross-entropy per token) after N epochs, the median over seeds
with the range; training time per run the median over seeds with its spread (min-max below 5 seeds, p10-p90 from 5;
bench/results.py), the two models interleaved seed by seed, and LayerLab ÷ by hand per seed. The conditions line
comes first. The two networks match when their perplexity ranges overlap (initialisations differ: the template's
attention projections start Xavier-uniform, the hand-written ones PyTorch's default Linear init).

Run: ``.venv/bin/python bench/bench_lm.py [--epochs 3] [--seeds 0,1,2] [--threads 2] [--write]``; prints a Markdown
block, ``--write`` puts it in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from builder import load_template
from builder.runs.pipeline import build_model, prepare

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.results import commit, conditions, spread  # noqa: E402
from builder.training.metrics import evaluate
from builder.training.trainer import Trainer

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADING = "## Language model: the gpt template vs the same network by hand (bench/bench_lm.py, issue 31)"


class Block(nn.Module):
    """A pre-norm causal self-attention block with a GELU feed-forward, nanoGPT style."""

    def __init__(self, d: int, heads: int, ff: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, ff), nn.Linear(ff, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))  # (B, h, T, d/h)
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, t, d)))
        return x + self.drop(self.fc2(self.drop(F.gelu(self.fc1(self.ln2(x))))))


class HandGPT(nn.Module):
    """Token and learned position embeddings, two blocks, a final LayerNorm and a Linear head."""

    def __init__(self, vocab: int, d: int = 64, heads: int = 4, ff: int = 256, layers: int = 2, max_len: int = 128,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(max_len, d)
        self.blocks = nn.ModuleList(Block(d, heads, ff, dropout) for _ in range(layers))
        self.norm, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.tok(x) + self.pos.weight[: x.shape[1]]  # (B, T, d)
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h))  # (B, T, vocab)


def _settings(epochs: int, seed: int) -> dict:
    return {"seed": seed, "epochs": epochs, "early_stopping": 0}


def layerlab(epochs: int, seed: int) -> tuple[float, int, float]:
    """(validation perplexity, parameters, seconds) of the template trained by LayerLab."""
    project, ds, cfg = prepare(load_template("gpt"), "text_corpus", _settings(epochs, seed), adapt=True)
    model = build_model(project.graph, cfg.seed)
    t0 = time.perf_counter()
    Trainer(model, ds, cfg).fit()
    took = time.perf_counter() - t0
    return evaluate(model, ds.val.X, ds.val.y, "next_token")["perplexity"], sum(p.numel() for p in model.parameters()), took


def by_hand(epochs: int, seed: int) -> tuple[float, int, float]:
    """(validation perplexity, parameters, seconds) of the hand-written network on LayerLab's prepared data."""
    project, ds, cfg = prepare(load_template("gpt"), "text_corpus", _settings(epochs, seed), adapt=True)
    torch.manual_seed(seed)
    model = HandGPT(ds.info.out_size)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    X, Y = ds.train.X, ds.train.y
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(X), generator=g).split(cfg.batch_size):
            logits = model(X[idx])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y[idx].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    took = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        nll = sum(F.cross_entropy(model(ds.val.X[i:i + 256]).reshape(-1, ds.info.out_size),
                                  ds.val.y[i:i + 256].reshape(-1), reduction="sum").item()
                  for i in range(0, len(ds.val.X), 256))
    return math.exp(nll / ds.val.y.numel()), sum(p.numel() for p in model.parameters()), took


def unigram() -> float:
    """Validation perplexity of training-split token frequencies (add-one)."""
    _, ds, _ = prepare(load_template("gpt"), "text_corpus", {}, adapt=True)
    counts = np.bincount(ds.train.y.reshape(-1).numpy(), minlength=ds.info.out_size) + 1.0
    logp = np.log(counts / counts.sum())
    return math.exp(-float(logp[ds.val.y.reshape(-1).numpy()].mean()))


def _cell(values: list[float]) -> str:
    return spread(values, digits=1)


def table(epochs: int, seeds: list[int]) -> list[str]:
    ours, hand = [], []
    for k, s in enumerate(seeds):  # interleaved, the order alternating
        for which in ((ours, hand) if k % 2 == 0 else (hand, ours)):
            which.append((layerlab if which is ours else by_hand)(epochs, s))
    rows = ["| model | parameters | validation perplexity, median (range) | training time per run, median (spread) |",
            "|---|---|---|---|"]
    for name, got in (("`gpt` template, trained by LayerLab", ours), ("the same network by hand (PyTorch)", hand)):
        rows.append(f"| {name} | {got[0][1]:,} | {_cell([g[0] for g in got])} | "
                    f"{spread([g[2] for g in got], unit=' s', digits=1)} |")
    rows.append(f"| LayerLab ÷ by hand, training time per seed | - | - | "
                f"{spread([a[2] / b[2] for a, b in zip(ours, hand)])} |")
    rows.append(f"| unigram (training frequencies, add-one) | - | {unigram():.1f} | - |")
    lo, hi = (max(min(g[0] for g in ours), min(g[0] for g in hand)), min(max(g[0] for g in ours), max(g[0] for g in hand)))
    verdict = "overlap" if lo <= hi else "do not overlap"
    return [HEADING, "",
            f"`text_corpus` (BPE 1,000, blocks of 32), {epochs} epochs, seeds {', '.join(map(str, seeds))}; "
            f"{time.strftime('%Y-%m-%d', time.gmtime())}, commit {commit()}; {platform.machine()}, "
            f"{torch.get_num_threads()} torch threads, shared CPU, load average {os.getloadavg()[0]:.1f} after. The two "
            f"networks' perplexity ranges {verdict}.", "", *rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write", action="store_true", help="put the block in bench/RESULTS.md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    conditions(f"Language model: bench/bench_lm.py --epochs {args.epochs} --seeds {args.seeds} --threads {args.threads}")
    block = table(args.epochs, [int(s) for s in args.seeds.split(",")])
    text = "\n".join(block) + "\n"
    print(text)
    if args.write:
        old = RESULTS.read_text()
        if HEADING in old:
            start = old.index(HEADING)
            end = old.find("\n## ", start + len(HEADING))
            old = old[:start] + old[end + 1:] if end != -1 else old[:start]
        RESULTS.write_text(old.rstrip("\n") + "\n\n" + text)


if __name__ == "__main__":
    main()
