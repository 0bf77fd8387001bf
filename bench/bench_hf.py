"""Hugging Face model folders and LoRA (issue 32): import time and output difference vs transformers, LoRA vs full
fine-tuning (trainable parameters, peak memory, step time), LoRA through LayerLab vs the same LoRA through PEFT
(final loss, step-time ratio). Writes the section "Hugging Face models and LoRA" of bench/RESULTS.md.

The bench makes its own models: a BERT-style and a GPT-2-style model with random weights (``save_pretrained``
into a temporary folder), hidden 128, 2 layers, 4 heads, vocabulary 1000, 32 tokens. The training task: the
first token's hidden state → Linear(2), cross-entropy on fixed random labels, AdamW (lr 1e-3), batch 16.

Step times are the median with its spread (p10-p90 over the timed steps; bench/results.py), the LayerLab ÷ PEFT
ratio the median with its p10-p90 over interleaved rounds; the import time is one import (a single value). The
conditions line comes first.

Peak memory: CPU, the allocator's peak during one training step from torch's profiler (as bench_memory.py); CUDA,
``torch.cuda.max_memory_allocated`` over the step.

    PYTHONPATH=. python bench/bench_hf.py [--steps 30] [--device cpu|cuda] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_memory import _cpu_peak  # noqa: E402
from bench.results import commit, conditions, spread, write_section  # noqa: E402
from builder.graph.compile import compile_graph, module_names  # noqa: E402
from builder.graph.lora import add_lora, lora_state  # noqa: E402
from builder.interchange.hf_import import import_hf_folder, inspect_folder, load_reference  # noqa: E402

H, LAYERS, HEADS, VOCAB, SEQ, BATCH, RANK, ALPHA = 128, 2, 4, 1000, 32, 16, 8, 16.0


def make(arch: str, folder: Path) -> Path:
    import transformers as tf

    torch.manual_seed(0)
    if arch == "bert":
        m = tf.BertModel(tf.BertConfig(vocab_size=VOCAB, hidden_size=H, num_hidden_layers=LAYERS,
                                       num_attention_heads=HEADS, intermediate_size=4 * H, max_position_embeddings=64,
                                       hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    else:
        m = tf.GPT2Model(tf.GPT2Config(vocab_size=VOCAB, n_embd=H, n_layer=LAYERS, n_head=HEADS, n_positions=64,
                                       bos_token_id=0, eos_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))
    m.save_pretrained(folder)
    return folder


class Head(torch.nn.Module):
    """backbone → first token → Linear(2)."""

    def __init__(self, body, hf: bool):
        super().__init__()
        self.body, self.hf = body, hf
        torch.manual_seed(1)
        self.head = torch.nn.Linear(H, 2)

    def forward(self, x):
        h = self.body(input_ids=x).last_hidden_state if self.hf else self.body(x)
        return self.head(h[:, 0])


def data(device: str):
    g = torch.Generator().manual_seed(2)
    return (torch.randint(0, VOCAB, (BATCH, SEQ), generator=g).to(device),
            torch.randint(0, 2, (BATCH,), generator=g).to(device))


def train(model, steps: int, device: str) -> dict:
    """``steps`` AdamW steps on one fixed batch: final loss, median step ms, trainable parameters, peak bytes."""
    model = model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    x, y = data(device)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    step()  # warm-up (optimizer state allocated)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = _cpu_peak(step)
    times, loss = [], None
    for _ in range(steps):
        t = time.perf_counter()
        loss = step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return {"loss": float(loss), "ms": 1000 * statistics.median(times), "ms_spread": spread(times, 1e3, digits=1),
            "trainable": sum(p.numel() for p in params),
            "total": sum(p.numel() for p in model.parameters()), "peak": peak}


def interleaved(a, b, steps: int, repeats: int, device: str) -> dict:
    """Step time of ``a`` ÷ ``b`` from ``repeats`` rounds, each timing ``steps`` steps of one then the other (the
    order alternating), so the machine's load reaches both alike: the median ratio and its spread (p10-p90; min-max below 5 rounds)."""
    runs = []
    for m in (a, b):
        m = m.to(device).train()
        params = [p for p in m.parameters() if p.requires_grad]
        runs.append((m, torch.optim.AdamW(params, lr=1e-3)))
    x, y = data(device)

    def block(m, opt) -> float:
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(m(x), y).backward()
            opt.step()
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    for m, opt in runs:
        block(m, opt)  # warm-up
    ratios = []
    for r in range(repeats):
        order = runs if r % 2 == 0 else runs[::-1]
        t = {id(m): block(m, opt) for m, opt in order}
        ratios.append(t[id(runs[0][0])] / t[id(runs[1][0])])
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios), "repeats": repeats,
            "spread": spread(ratios)}


def layerlab(res, lora: bool):
    graph = add_lora(res.project.graph, "attention", rank=RANK, alpha=ALPHA) if lora else res.project.graph
    names = module_names(graph)
    torch.manual_seed(0)
    model = compile_graph(graph)
    model.load_state_dict(lora_state(graph, res.weights, names) if lora else res.weights, strict=not lora)
    if lora:
        for p in model.parameters():
            p.requires_grad_(False)
        for n in graph.nodes:
            if n.type == "LoRA":
                for part in ("lora_A", "lora_B"):
                    getattr(getattr(model, names[n.id]), part).weight.requires_grad_(True)
    return graph, names, model


def peft_twin(info, graph, names, model, arch: str):
    """The same LoRA through PEFT, with the LayerLab model's A and B copied in (B set to the same random values)."""
    from peft import LoraConfig, get_peft_model

    targets = ["query", "key", "value"] if arch == "bert" else ["c_attn"]
    pm = get_peft_model(load_reference(info), LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0,
                                                         target_modules=targets, fan_in_fan_out=arch == "gpt2"))
    sd = dict(pm.named_parameters())
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for n in graph.nodes:
            if n.type == "LoRA":
                mod = getattr(model, names[n.id])
                b = torch.randn(mod.lora_B.weight.shape, generator=g) * 0.01
                mod.lora_B.weight.copy_(b)
                sd[f"base_model.model.{n.label}.lora_B.default.weight"].copy_(b)
                sd[f"base_model.model.{n.label}.lora_A.default.weight"].copy_(mod.lora_A.weight)
    return pm


def bench(arch: str, steps: int, device: str, root: Path, repeats: int = 9) -> dict:
    folder = make(arch, root / arch)
    t = time.perf_counter()
    res = import_hf_folder(folder, seq_len=SEQ)
    import_s = time.perf_counter() - t
    info = inspect_folder(folder, seq_len=SEQ)
    out = {"arch": arch, "import_s": import_s, "diff": res.report["max_abs_diff"], "params": info.params}
    _, _, full = layerlab(res, lora=False)
    out["full"] = train(Head(full, False), steps, device)
    graph, names, lora_model = layerlab(res, lora=True)
    pm = peft_twin(info, graph, names, lora_model, arch)
    ll_head, peft_head = Head(lora_model, False), Head(pm, True)
    out["lora"] = train(ll_head, steps, device)
    out["peft"] = train(peft_head, steps, device)
    out["ratio"] = interleaved(ll_head, peft_head, max(5, steps // 3), repeats, device)
    return out


def table(rows: list[dict], device: str, steps: int) -> str:
    lines = ["## Hugging Face models and LoRA (issue 32)\n",
             f"`bench/bench_hf.py --steps {steps} --device {device}` ({time.strftime('%Y-%m-%d', time.gmtime())}, "
             f"commit {commit()}, load average {os.getloadavg()[0]:.1f} after), torch {torch.__version__}, "
             f"{torch.get_num_threads()} thread(s). Models made by the bench with random weights: hidden {H}, "
             f"{LAYERS} layers, {HEADS} heads, vocabulary {VOCAB}, {SEQ} tokens; batch {BATCH}; first token → Linear(2), "
             f"AdamW 1e-3 on one fixed batch, dropout 0 (so both LoRA paths see the same computation); LoRA rank {RANK}, alpha {ALPHA:g} on the attention projections (BERT: "
             "query, key, value; GPT-2: the fused c_attn). Step time: median (spread) of the timed steps; the ratio: "
             "rounds of steps of one model then the other (order alternating), median and spread of the rounds' "
             "ratios. Import: one import each (a single value).\n",
             "| model | import s | max abs diff vs transformers | parameters |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['arch']} | {r['import_s']:.1f} | {r['diff']:.2g} | {r['params']:,} |")
    lines += ["", "| model | mode | trainable params | peak memory of a step | step ms | final loss |",
              "|---|---|---|---|---|---|"]
    for r in rows:
        for mode, label in (("full", "full fine-tune (LayerLab)"), ("lora", "LoRA (LayerLab)"),
                            ("peft", "LoRA (PEFT)")):
            m = r[mode]
            lines.append(f"| {r['arch']} | {label} | {m['trainable']:,} of {m['total']:,} | "
                         f"{m['peak'] / 2**20:.1f} MiB | {m['ms_spread']} | {m['loss']:.4f} |")
    lines += ["", "| model | LoRA step time LayerLab ÷ PEFT: median of interleaved repeats (spread) | final loss "
                  "LayerLab − PEFT |", "|---|---|---|"]
    for r in rows:
        q = r["ratio"]
        lines.append(f"| {r['arch']} | **{q['spread']}** "
                     f"| {r['lora']['loss'] - r['peft']['loss']:.2g} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=9, help="interleaved rounds for the LoRA step-time ratio")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1 if args.device == "cpu" else torch.get_num_threads())
    conditions(f"Hugging Face and LoRA: bench/bench_hf.py --steps {args.steps} --device {args.device} --repeats "
               f"{args.repeats}")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [bench(a, args.steps, args.device, Path(tmp), args.repeats) for a in ("bert", "gpt2")]
    text = table(rows, args.device, args.steps)
    print(text)
    if not args.no_write:
        write_section("## Hugging Face models and LoRA (issue 32)", text)


if __name__ == "__main__":
    main()
