"""What a language model writes: continuations of a prompt (temperature, top-k), and the samples kept per epoch.

:func:`generate` continues token ids with a model trained on ``next_token`` (inputs of a fixed length T: the
last T tokens are the context, padded on the right, and the logits at the last real position give the next
token). :class:`TextSamples` is the trainer callback that continues a fixed prompt (the start of the first
validation block) after every epoch, seeded, and keeps the texts in the run's ``text_samples.json`` (the Train
page shows them as the GAN's sample grid is shown); :func:`read_text_samples` reads them back. Example::

    >>> import torch
    >>> class Next(torch.nn.Module):  # always predicts token (id + 1) mod 5
    ...     def forward(self, x):
    ...         return torch.nn.functional.one_hot((x + 1) % 5, 5).float() * 20
    >>> generate(Next(), [2], 4, length=3, top_k=1)
    [2, 3, 4, 0, 1]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from builder.data.disk import write_atomic
from builder.errors import TrainingError
from builder.training.callbacks import Callback
from builder.training.run_folder import read_json_file

PROMPT_TOKENS = 8  # tokens of the validation text the per-epoch samples continue
SAMPLE_TOKENS = 40  # tokens written per epoch
KEPT_EPOCHS = 200  # samples kept in text_samples.json (the first and the latest ones)


def generate(model: torch.nn.Module, prompt: list[int], steps: int, *, length: int, temperature: float = 1.0,
             top_k: int = 0, seed: int = 0, pad_id: int = 0) -> list[int]:
    """``prompt`` followed by ``steps`` sampled tokens. ``length``: the model's input length T; ``temperature``
    divides the logits (0: the most likely token); ``top_k`` keeps the k most likely (0: all). Raises
    TrainingError for bad settings or a model that does not give (1, T, vocab) logits."""
    if not 0 <= temperature <= 10 or not 0 <= top_k <= 100_000 or not 0 <= steps <= 4096 or length < 1:
        raise TrainingError(f"sampling takes temperature in [0, 10], top_k in [0, 100000] and up to 4096 tokens; "
                            f"received: temperature={temperature}, top_k={top_k}, steps={steps}. Fix: e.g. "
                            "temperature 0.8, top_k 20")
    ids = [int(i) for i in prompt] or [pad_id]
    gen = torch.Generator().manual_seed(int(seed))
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            for _ in range(steps):
                ctx = ids[-length:]
                x = torch.full((1, length), pad_id, dtype=torch.long)
                x[0, :len(ctx)] = torch.tensor(ctx)
                out = model(x.to(device))
                out = out[0] if isinstance(out, tuple | list) else out
                if out.dim() != 3 or out.shape[1] != length:
                    raise TrainingError(f"generating text needs (batch, {length}, vocab) logits; received: "
                                        f"{list(out.shape)}. Fix: a next_token model")
                logits = out[0, len(ctx) - 1].float().cpu()
                if temperature == 0:
                    ids.append(int(logits.argmax()))
                    continue
                logits = logits / temperature
                if 0 < top_k < logits.numel():
                    cut = torch.topk(logits, top_k).values[-1]
                    logits = logits.masked_fill(logits < cut, float("-inf"))
                ids.append(int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)))
    finally:
        model.train(was)
    return ids


class TextSamples(Callback):
    """After every epoch of a ``next_token`` run, continue a fixed prompt and keep the text in ``path``
    (``text_samples.json``: ``[{"epoch", "prompt", "text"}, ...]``); the epoch's event carries it too."""

    def __init__(self, path: str | Path | None, *, temperature: float = 0.8, top_k: int = 20, seed: int = 0):
        self.path = Path(path) if path is not None else None
        self.temperature, self.top_k, self.seed = temperature, top_k, seed

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict) -> dict | None:
        info = trainer.dataset.info
        if trainer.task != "next_token" or not info.tokenizer or not len(trainer.dataset.val):
            return None
        from builder.data.text import decode, load_tokenizer  # lazy: heavy (numpy)

        tok = load_tokenizer(info.tokenizer)
        length = int(info.input_shape[0])
        prompt = trainer.dataset.val.X[0, :min(PROMPT_TOKENS, length)].tolist()
        ids = generate(trainer.model, prompt, SAMPLE_TOKENS, length=length, temperature=self.temperature,
                       top_k=self.top_k, seed=self.seed)
        entry = {"epoch": epoch + 1, "prompt": decode(tok, prompt), "text": decode(tok, ids[len(prompt):]),
                 "temperature": self.temperature, "top_k": self.top_k}
        if self.path is not None:
            kept = read_text_samples(self.path)
            kept = [e for e in kept if e["epoch"] < entry["epoch"]] + [entry]
            if len(kept) > KEPT_EPOCHS:
                kept = kept[:1] + kept[-(KEPT_EPOCHS - 1):]

            write_atomic(self.path, json.dumps(kept).encode("utf-8"), "the text samples")
        return {"text_sample": entry["text"][:400]}


def read_text_samples(path: str | Path) -> list[dict]:
    """A run's ``text_samples.json`` in epoch order; empty when missing or damaged."""
    data = read_json_file(path)  # bounded: the job's process wrote it
    if not isinstance(data, list):
        return []
    ok = [e for e in data if isinstance(e, dict) and isinstance(e.get("epoch"), int)
          and isinstance(e.get("text"), str) and isinstance(e.get("prompt"), str)]
    return sorted(ok, key=lambda e: e["epoch"])


__all__ = ["generate", "TextSamples", "read_text_samples", "PROMPT_TOKENS", "SAMPLE_TOKENS"]
