"""Text and time series (issue 31): the sequence templates against simple baselines on the built-in data.

Sentiment (``text_sentiment``, 2,000 generated reviews, seed 0, the same 70/15/15 split for every model): test
accuracy of the ``sentiment_lstm`` and ``text_encoder`` templates at their template settings, against TF-IDF
(words and word pairs) + logistic regression (scikit-learn) fitted on the same training split, read back from the
same tokens (so the baseline sees exactly what the networks see, ``<unk>`` included); training throughput in
tokens per second (padding included, the tokens the model processes) on this CPU.

Language model (``text_corpus``, byte-level BPE of 1,000 tokens, blocks of 32): validation perplexity of a small
LSTM language model (Embedding 64, LSTM 128 over every step, Linear) after N epochs against a unigram model
(training-split token frequencies, add-one smoothed). The GPT-style decoder template is the seqlayers branch's.

Forecasting (``sunspots``, 22 years in, the next year out, split by time): test MAE in sunspot numbers of the
``rnn_forecaster`` template (LSTM 32 + Linear, trained by LayerLab) against the same network written by hand in
PyTorch with the same data, initial seed, optimiser, learning rate, batch size and epochs (no early stopping for
either), and against two baselines: the last value, and seasonal naive (the value 11 years before the forecast
year: the solar cycle).

Every fit runs ``--repeats`` times with the same seed (the models interleaved within a round): training times
and throughputs are the median with its spread (p10-p90; min-max below 5 repeats), the LayerLab ÷ by-hand ratio
the median of the per-round ratios; an accuracy, perplexity or MAE is shown once, or as its range where the
repeats differ. Forecasting starts with an untimed 2-epoch warm-up of both; the sentiment and language-model fits
have none (each is long against first-use costs). The conditions line (bench/results.py) comes first.

Run: ``.venv/bin/python bench/bench_text.py [--threads 2] [--epochs-lm 3] [--repeats 3] [--write]``; prints a
Markdown block, ``--write`` puts it in bench/RESULTS.md.
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

from builder import load_template
from builder.data.text import decode, load_tokenizer
from builder.graph.architectures import build as build_architecture
from builder.graph.project import Project
from builder.runs.pipeline import build_model, prepare
from builder.training.trainer import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.results import commit, conditions, spread  # noqa: E402

REPEATS = 3


def _once(values: list[float], digits: int) -> str:
    """One value, or its range where the repeats differ."""
    lo, hi = min(values), max(values)
    return f"{lo:.{digits}f}" if f"{lo:.{digits}f}" == f"{hi:.{digits}f}" else f"{lo:.{digits}f}-{hi:.{digits}f}"


def _train(project, dataset: str, overrides: dict, options: dict | None = None):
    project, ds, cfg = prepare(project, dataset, overrides, dataset_options=options, adapt=True)
    model = build_model(project.graph, cfg.seed)
    t0 = time.perf_counter()
    res = Trainer(model, ds, cfg).fit()
    return res, ds, time.perf_counter() - t0, model


def sentiment(repeats: int = REPEATS) -> list[str]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    rows = []
    ds = None
    names = ("sentiment_lstm", "text_encoder")
    fits: dict[str, list] = {n: [] for n in names}
    for _ in range(repeats):
        for name in names:
            res, ds, took, _ = _train(load_template(name), "text_sentiment", {"seed": 0})
            fits[name].append((res, took, len(ds.train) * ds.info.input_shape[0] * res.epochs_completed))
    for name in names:
        f = fits[name]
        rows.append(f"| `{name}` template | {_once([r.test['accuracy'] for r, _, _ in f], 3)} | "
                    f"{_once([r.epochs_completed for r, _, _ in f], 0)} | {spread([t for _, t, _ in f], unit=' s', digits=1)} | "
                    f"{spread([n / t for _, t, n in f], digits=0)} |")
    tok = load_tokenizer(ds.info.tokenizer)
    texts = {s: [decode(tok, x) for x in getattr(ds, s).X] for s in ("train", "test")}
    vec = TfidfVectorizer(ngram_range=(1, 2), token_pattern=r"[^ ]+")
    took = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        clf = LogisticRegression(max_iter=2000).fit(vec.fit_transform(texts["train"]), ds.train.y.numpy())
        took.append(time.perf_counter() - t0)
    acc = float((clf.predict(vec.transform(texts["test"])) == ds.test.y.numpy()).mean())
    rows.append(f"| TF-IDF (1-2 grams) + logistic regression | {acc:.3f} | - | {spread(took, unit=' s')} | - |")
    return ["| model | test accuracy | epochs | training time | tokens/s |", "|---|---|---|---|---|", *rows]


def _lstm_lm(vocab: int, length: int) -> Project:
    return build_architecture("lstm_lm", seq_len=length, vocab=vocab, embed=64, hidden=128)


def language_model(epochs: int, repeats: int = REPEATS) -> list[str]:
    from builder.training.metrics import evaluate

    took, perp = [], []
    for _ in range(repeats):
        res, ds, t, model = _train(_lstm_lm(1000, 32), "text_corpus",
                                   {"seed": 0, "epochs": epochs, "lr": 0.005, "batch_size": 32, "optimizer": "adam",
                                    "early_stopping": 0})
        took.append(t)
        perp.append(evaluate(model, ds.val.X, ds.val.y, "next_token")["perplexity"])
    counts = np.bincount(ds.train.y.reshape(-1).numpy(), minlength=ds.info.out_size) + 1.0
    logp = np.log(counts / counts.sum())
    unigram = math.exp(-float(logp[ds.val.y.reshape(-1).numpy()].mean()))
    tokens = ds.train.X.numel() * res.epochs_completed
    return ["| model | validation perplexity | epochs | training time | tokens/s |", "|---|---|---|---|---|",
            f"| LSTM language model (64/128, {sum(p.numel() for p in model.parameters()):,} parameters) | "
            f"{_once(perp, 1)} | {res.epochs_completed} | {spread(took, unit=' s', digits=1)} | "
            f"{spread([tokens / t for t in took], digits=0)} |",
            f"| unigram (training frequencies, add-one) | {unigram:.1f} | - | - | - |",
            f"| uniform over the vocabulary | {ds.info.out_size:.1f} | - | - | - |"]


def _hand_lstm(ds, epochs: int, lr: float, batch: int, seed: int) -> tuple[float, float]:
    """The forecaster written by hand: LSTM(1 -> 32), Linear(32 -> 1), Adam, MSE, shuffled batches."""
    torch.manual_seed(seed)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(1, 32, batch_first=True)
            self.head = torch.nn.Linear(32, 1)

        def forward(self, x):
            _, (h, _) = self.lstm(x)
            return self.head(h[-1])
    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    X, y = ds.train.X, ds.train.y
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(X), generator=gen)
        for i in range(0, len(X), batch):
            idx = perm[i:i + batch]
            if len(idx) < 2:
                continue
            opt.zero_grad()
            torch.nn.functional.mse_loss(net(X[idx]), y[idx]).backward()
            opt.step()
    took = time.perf_counter() - t0
    with torch.no_grad():
        pred = net(ds.test.X)
    return _mae(ds, pred), took


def _mae(ds, pred) -> float:
    std = np.asarray(ds.info.target_std)
    return float((np.abs(pred.numpy().reshape(len(pred), -1) - ds.test.y.numpy()) * std).mean())


def forecasting(repeats: int = REPEATS) -> list[str]:
    project = load_template("rnn_forecaster")
    tr = project.training
    settings = {"seed": 0, "epochs": tr["epochs"], "lr": tr["lr"], "batch_size": tr["batch_size"],
                "optimizer": "adam", "early_stopping": 0, "scheduler": "none"}
    took, hand_took, mine, hand = [], [], [], []
    _, ds, _, _ = _train(project, "sunspots", {**settings, "epochs": 2})  # warm-up of both, untimed: first-use
    _hand_lstm(ds, 2, tr["lr"], tr["batch_size"], 0)                       # costs stay out of the rounds
    for r in range(repeats):  # interleaved, the order alternating
        for which in ((0, 1) if r % 2 == 0 else (1, 0)):
            if which == 0:
                res, ds, t, model = _train(project, "sunspots", settings)
                took.append(t)
                with torch.no_grad():
                    mine.append(_mae(ds, model.eval()(ds.test.X)))
            else:
                m, t = _hand_lstm(ds, tr["epochs"], tr["lr"], tr["batch_size"], 0)
                hand.append(m)
                hand_took.append(t)
    std, mean = np.asarray(ds.info.input_std), np.asarray(ds.info.input_mean)
    raw = ds.test.X.numpy()[:, :, 0] * std[0] + mean[0]
    actual = ds.test.y.numpy()[:, 0] * std[0] + mean[0]
    last = float(np.abs(raw[:, -1] - actual).mean())
    seasonal = float(np.abs(raw[:, -11] - actual).mean())
    return ["| model | test MAE (sunspot number) | training time |", "|---|---|---|",
            f"| `rnn_forecaster` template (LayerLab, {tr['epochs']} epochs) | {_once(mine, 2)} | "
            f"{spread(took, unit=' s', digits=1)} |",
            f"| the same LSTM written by hand in PyTorch | {_once(hand, 2)} | {spread(hand_took, unit=' s', digits=1)} |",
            f"| LayerLab ÷ by hand, training time per round | - | {spread([a / b for a, b in zip(took, hand_took)])} |",
            f"| last value | {last:.2f} | - |", f"| seasonal naive (11 years before) | {seasonal:.2f} | - |",
            f"\n{len(ds.test)} test windows (years {1700 + ds.info.series['boundaries'][1] + 22}-2008)."]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs-lm", type=int, default=3)
    ap.add_argument("--write", action="store_true", help="put the block in bench/RESULTS.md")
    ap.add_argument("--only", choices=("sentiment", "lm", "forecast"))
    ap.add_argument("--repeats", type=int, default=REPEATS, help="fits per model (same seed), for the time spreads")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    conditions(f"Text and time series: bench/bench_text.py --threads {a.threads} --epochs-lm {a.epochs_lm} "
               f"--repeats {a.repeats}" + (f" --only {a.only}" if a.only else ""))
    parts = []
    if a.only in (None, "sentiment"):
        parts += ["### Sentiment: `text_sentiment` (2,000 generated reviews, word-level tokenizer of the training "
                  "split, max_length 20)", "", *sentiment(a.repeats), ""]
    if a.only in (None, "lm"):
        parts += [f"### Language model: `text_corpus` (BPE 1,000, blocks of 32), {a.epochs_lm} epochs", "",
                  *language_model(a.epochs_lm, a.repeats), ""]
    if a.only in (None, "forecast"):
        parts += ["### Forecasting: `sunspots` (lookback 22, horizon 1)", "", *forecasting(a.repeats), ""]
    head = (f"## Text and time series (bench/bench_text.py, issue 31, {time.strftime('%Y-%m-%d')})\n\n"
            f"commit {commit()}; {platform.processor() or platform.machine()}, {a.threads} threads, torch "
            f"{torch.__version__}; load average {os.getloadavg()[0]:.1f} after; {a.repeats} fits "
            "per model, times as median (spread).\n\n")
    text = head + "\n".join(parts) + "\n"
    print(text)
    if a.write:
        from bench.results import write_section

        write_section("## Text and time series", text)


if __name__ == "__main__":
    main()
