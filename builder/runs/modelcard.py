"""Model cards: one Markdown page per run (architecture, data, settings, curves, test metrics, environment).

Every value that comes from the run (names, ids, node types, parameters, class names, messages) is escaped
with :mod:`builder.escape`, so a crafted name cannot add headings, links, HTML or table cells.

Example::

    # not a doctest (needs files or training): run by tests/runs/test_modelcard.py::test_card_of_a_finished_run
    text = model_card(store.get(run_id), store.metrics(run_id))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from builder.data import records
from builder.data.disk import write_atomic
from builder.data.sources import DatasetSource
from builder.errors import LayerLabError
from builder.escape import md_code, md_text
from builder.graph.latency import comparison_text
from builder.runs.record import Run, shown_time
from builder.training.lineage import baseline_line, init_line
from builder.training.metrics import loss_kind
from builder.training.metrics_units import metric_in_units
from builder.training.objectives import has_objective, resolve_objective
from builder.training.prune import latency_cell, latency_text
from builder.training.run_folder import RunFolder


def _shown_options(run: dict) -> dict:
    """The run's dataset options as people see them (:meth:`~builder.data.sources.DatasetSource.shown_options`: an
    upload by its name, never a server path). Not :func:`builder.runs.summary.shown_dataset_options`: the summary
    reads the store, which writes this card."""
    src = DatasetSource.from_run(run)
    return src.shown_options() if src is not None else {}


def _fmt(v: Any) -> str:
    """A value as Markdown text: numbers formatted, everything else escaped."""
    if isinstance(v, bool) or v is None:
        return "-" if v is None else str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int):
        return f"{v}" if abs(v) < 10**15 else f"{float(v):.4g}" if v.bit_length() < 1000 else "(huge)"
    return md_text(v)


def _num(v: Any, spec: str) -> str:
    """``format(v, spec)`` for a number, else the escaped value (crafted records hold anything)."""
    if records.number(v, finite=False) is not None:
        try:
            return format(v, spec)
        except (ValueError, OverflowError):
            pass
    return _fmt(v)


def _architecture(project: dict) -> list[str]:
    """The node table (id, type, parameters) of a run's project record."""
    graph = (project or {}).get("graph", {}) if isinstance(project, dict) else {}
    graph = graph if isinstance(graph, dict) else {}
    lines = ["| node | type | parameters |", "|---|---|---|"]
    for n in graph.get("nodes", []) if isinstance(graph.get("nodes"), list) else []:
        if not isinstance(n, dict):
            continue
        params = n.get("params") if isinstance(n.get("params"), dict) else {}
        shown = ", ".join(f"{k}={v}" for k, v in params.items())
        lines.append(f"| {md_code(n.get('id'), table=True)} | {md_text(n.get('type'))} | {md_text(shown) or '-'} |")
    return lines


def _count_weights(path: Path) -> int | None:
    if not path.is_file():
        return None
    from builder.training.weights import read_weights  # lazy: heavy (safetensors)

    sd, _ = read_weights(path)
    return int(sum(v.numel() for k, v in sd.items() if v.is_floating_point() and "running_" not in k))


def model_card(run: dict, curve: list[dict] | None = None, run_dir: Path | None = None) -> str:
    """The Markdown model card of a run (a dict from :meth:`RunStore.get`) and its epoch curve."""
    curve = curve or []
    cfg = run.get("config") or {}
    info = run.get("dataset_info") or {}
    env = run.get("environment") or {}
    out = [f"# Model card: {md_text(run.get('name') or 'run')} ({md_code(run.get('id'))})", "",
           f"Status **{md_text(run.get('status'))}**; created {md_text(shown_time(run.get('created_at')))}, "
           f"finished {md_text(shown_time(run.get('finished_at')))}.",
           ""]
    if run.get("message"):
        out += [f"> {md_text(run['message'], 2000, line_start=True)}", ""]
    arch = _architecture(run.get("project") or {})
    params = env.get("params")  # recorded by the pipeline from its graph analysis; older runs: the weights file
    total = params if isinstance(params, int) and not isinstance(params, bool) else None
    if total is None and run_dir is not None:
        total = _count_weights(RunFolder(run_dir).weights)
    macs = env.get("macs")
    cost = (f"; multiply-adds per sample: **{macs:,}**" if isinstance(macs, int) and not isinstance(macs, bool)
            else "")
    out += ["## Architecture", "", (f"Parameters: **{total:,}**" if total is not None else "Parameters: unknown") + cost,
            "", *arch, ""]
    out += _objective(Run.of(run), cfg, info)
    if line := baseline_line(run.get("tags"), run.get("test_metrics")):  # a distilled run beside its student alone
        out += ["## Distillation baseline", "", f"- {md_text(line)}", ""]
    if line := init_line(env):  # fine-tuned or transferred: what came from the source run, what started random
        out += ["## Starting weights", "", f"- {md_text(line, 4000)}", ""]
    sizes = info.get("sizes") or {}
    classes = info.get("class_names") if isinstance(info.get("class_names"), list) else None
    out += ["## Dataset", "",
            f"- name: {md_code(run.get('dataset_name'))} ({_fmt(info.get('name', '-'))}); task "
            f"**{_fmt(info.get('task', '-'))}**, modality {_fmt(info.get('modality', '-'))}",
            f"- input shape {_fmt(str(info.get('input_shape')))} ({_fmt(info.get('input_dtype', 'float32'))}), "
            f"output size {_fmt(info.get('out_size'))}"
            + (f", classes: {md_text(', '.join(map(str, classes)), 2000)}" if classes else ""),
            f"- split (seeded{', stratified' if info.get('task') in ('multiclass', 'binary') else ''}): "
            f"train {_fmt(sizes.get('train', '-'))}, validation {_fmt(sizes.get('val', '-'))}, test "
            f"{_fmt(sizes.get('test', '-'))}; options {_fmt(str(_shown_options(run)))}"]
    if info.get("description"):
        out.append(f"- {md_text(info['description'], 2000, line_start=True)}")
    for note in info.get("notes") or []:
        out.append(f"- {md_text(note, 2000, line_start=True)}")
    out += ["", "## Hyper-parameters", "", "| setting | value |", "|---|---|"]
    out += [f"| {md_text(k)} | {_fmt(v)} |" for k, v in cfg.items() if v not in (None, [], {})]
    out += ["", "## Training curve", ""]
    info = run.get("dataset_info") or {}

    def units(name: object, value: object) -> object:  # a scaled target's errors in its own units
        n = records.number(value, finite=False)
        return metric_in_units(str(name), float(n), info)[0] if n is not None else value

    if curve:
        name = curve[-1].get("metric_name", "metric")
        metric = md_text(name)
        best = min(curve, key=lambda e: v if (v := records.number(e.get("val_loss"))) is not None else float("inf"))
        out += [f"- epochs run: {len(curve)}",
                f"- train loss {_fmt(curve[0].get('train_loss'))} -> {_fmt(curve[-1].get('train_loss'))}; "
                f"validation loss {_fmt(curve[0].get('val_loss'))} -> {_fmt(curve[-1].get('val_loss'))}",
                f"- best validation loss {_fmt(best.get('val_loss'))} at epoch {_fmt(best.get('epoch'))} "
                f"(validation {metric} {_fmt(units(name, best.get('val_metric')))})",
                f"- final validation {metric} {_fmt(units(name, curve[-1].get('val_metric')))}, learning rate "
                f"{_fmt(curve[-1].get('lr'))}", ""]
        out += ["| epoch | train loss | val loss | val " + metric + " |", "|---|---|---|---|"]
        step = max(1, len(curve) // 20)
        for e in curve[::step]:
            out.append(f"| {_fmt(e.get('epoch'))} | {_fmt(e.get('train_loss'))} | {_fmt(e.get('val_loss'))} | "
                       f"{_fmt(units(name, e.get('val_metric')))} |")
    else:
        out.append("No epoch completed.")
    out += ["", "## Test metrics (held-out test split)", ""]
    test = run.get("test_metrics")
    if test:
        scalars = {k: v for k, v in test.items() if isinstance(v, (int, float))}
        out += [", ".join(f"{md_text(k)} **{_fmt(units(k, v))}**" for k, v in scalars.items()), ""]
        if test.get("per_class"):
            out += ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
            for c, m in test["per_class"].items():
                m = m if isinstance(m, dict) else {}
                out.append(f"| {md_text(c)} | {_num(m.get('precision'), '.3f')} | {_num(m.get('recall'), '.3f')} | "
                           f"{_num(m.get('f1'), '.3f')} | {_fmt(m.get('support'))} |")
            out += ["", "Confusion matrix (rows true, columns predicted):", "", "```"]
            out += [" ".join(_int5(v) for v in row) for row in test.get("confusion_matrix", []) if isinstance(row, list)]
            out += ["```"]
    else:
        out.append("Not evaluated (the run did not finish).")
    out += _quantization(run_dir)
    out += _pruning(run_dir)
    out += ["", "## Environment", "",
            f"- torch {_fmt(env.get('torch', torch.__version__))}, python {_fmt(env.get('python', '-'))}, "
            f"{_fmt(env.get('platform', '-'))}",
            f"- device: {_fmt(cfg.get('device', 'auto'))} (resolved: {_fmt(env.get('device') or 'not recorded')}), "
            f"precision {_fmt(env.get('precision') or ('float32' if not cfg.get('amp') else 'not recorded'))}, "
            f"seed {_fmt(cfg.get('seed'))}", ""]
    return "\n".join(out)


_BUILT_IN = {"ce": "cross-entropy", "bce": "binary cross-entropy with logits", "reg": "regression loss",
             "tok": "cross-entropy of each next token (perplexity = exp(loss))"}
_OPTIMISER_KEYS = ("optimizer", "lr", "momentum", "nesterov", "weight_decay", "grad_clip")


def _objective(run: Run, cfg: dict, info: dict) -> list[str]:
    """The objective section: the loss terms with their weights and inputs, the networks with their optimizers
    and the update schedule (a drawn objective, :mod:`builder.training.objectives`), else the task's built-in
    loss. A project record that cannot be read says so instead (the record's project is parsed once: the pipeline
    that stored it hands it on, :meth:`~builder.runs.record.Run.with_project`)."""
    out = ["## Objective", ""]
    try:
        proj = run.project
        drawn = has_objective(proj)
        obj = resolve_objective(proj) if drawn else None
    except (LayerLabError, ValueError, TypeError) as e:
        return [*out, f"Not readable from the run's project: {md_text(str(e), 300)}", ""]
    if obj is None:
        task = str(info.get("task", cfg.get("task", "-")))
        width = info.get("out_size") if isinstance(info.get("out_size"), int) else 2
        kind = loss_kind(task, width)
        name = _BUILT_IN[kind] + (f" ({_fmt(cfg.get('loss', 'auto'))}; auto = MSE)" if kind == "reg" else "")
        return [*out, f"The task's built-in loss: **{name}** (task {_fmt(task)}); one network, optimizer "
                f"{_fmt(cfg.get('optimizer', '-'))}, learning rate {_fmt(cfg.get('lr'))}.", ""]
    graph = proj.graph
    params = {n.id: n.params for n in graph.nodes}
    out += ["Total loss = " + " + ".join(f"{_fmt(t.weight)} · {md_code(t.id)}" for t in obj.terms) + ".", "",
            "| term | loss | weight | reads | settings | trains |", "|---|---|---|---|---|---|"]
    for t in obj.terms:
        reads = ", ".join(f"{e.target_port or 'input'} ← {e.source}" for e in graph.edges if e.target == t.id)
        extra = ", ".join(f"{k}={v}" for k, v in params[t.id].items() if k != "weight")
        out.append(f"| {md_code(t.id, table=True)} | {md_text(t.type)} | {_fmt(t.weight)} | {md_text(reads) or '-'} "
                   f"| {md_text(extra) or '-'} | {md_text(t.network or 'every network')} |")
    out += ["", "| network | nodes | optimizer | settings |", "|---|---|---|---|"]
    for name, members in obj.networks.items():
        st = {**{k: cfg[k] for k in _OPTIMISER_KEYS if cfg.get(k) not in (None, [], {})}, **obj.settings.get(name, {})}
        opt = st.pop("optimizer", "-")
        st = {k: v for k, v in st.items() if not (k == "momentum" and opt not in ("sgd", "rmsprop")
                                                  or k == "nesterov" and opt != "sgd")}
        st = {k: v for k, v in st.items() if not (k == "weight_decay" and not v)}
        out.append(f"| {md_code(name, table=True)} | {len(members)} | {_fmt(opt)} | "
                   f"{md_text(', '.join(f'{k}={v}' for k, v in st.items())) or '-'} |")
    out += ["", "- update schedule: " + ", then ".join(f"{_fmt(k)} step(s) of {md_code(n)}" for n, k in obj.schedule)
            + " (one batch per step), repeated"]
    teacher = (proj.training or {}).get("teacher")
    if teacher:
        out.append(f"- teacher: run {md_code(teacher)} (its outputs feed the distillation term)")
    if obj.feeds:
        fed = ", ".join(f"{md_code(k)} ← {md_text(v)}" for k, v in obj.feeds.items())
        out.append(f"- fed per batch: {fed}")
    return [*out, ""]


def _quantization(run_dir: Path | None) -> list[str]:
    """The int8 section, when ``layerlab export --run ID --format onnx --quantize int8`` measured one."""
    q = RunFolder(run_dir).read_quantization() if run_dir is not None else None
    if q is None:
        return []
    try:
        return ["", "## Quantization (ONNX, dynamic int8)", "",
                f"- file size {int(q['bytes_before']):,} -> {int(q['bytes_after']):,} bytes (ratio {float(q['ratio']):.3f})",
                f"- test {md_text(str(q['metric']))} {_fmt(q['test_before'])} -> {_fmt(q['test_after'])} (delta "
                f"{_fmt(q['delta'])}) on {_fmt(q.get('n_test', '-'))} held-out samples, scored with onnxruntime",
                *([f"- latency (onnxruntime, one thread): {md_text(comparison_text(q['latency']))}"]
                  if isinstance(q.get("latency"), dict) else [])]
    except (ValueError, KeyError, TypeError, OSError):
        return []


def _pruning(run_dir: Path | None) -> list[str]:
    """The pruning section of a run made by ``layerlab prune`` (its ``prune.json``)."""
    p = RunFolder(run_dir).read_prune() if run_dir is not None else None
    if not p:
        return []
    try:
        b, a, metric = p["before"], p["after"], str(p["metric"])
        out = ["", "## Pruning", "",
               f"- {md_text(p['method'])} pruning of run {md_code(p['parent_id'])}, amount {_fmt(p['amount'])}, "
               f"{_fmt(p['finetune_epochs'])} fine-tune epochs"]
        out += [f"- {md_text('+'.join(map(str, g['members'])))}: {_fmt(g['before'])} -> {_fmt(g['after'])} channels"
                for g in p.get("groups") or []]
        out += [f"- left alone {md_text('+'.join(map(str, g['members'])))}: {md_text('; '.join(map(str, g['reasons'])))}"
                for g in p.get("left_alone") or []]
        out += [f"- {md_text(n)}: {_num(s, '.1%')} of its weights zero" for n, s in (p.get("sparsity") or {}).items()]
        out += ["", "| | before | after |", "|---|---|---|",
                f"| parameters | {_fmt(b['params'])} | {_fmt(a['params'])} |",
                f"| nonzero parameters | {_fmt(b['nonzero'])} | {_fmt(a['nonzero'])} |",
                f"| weights file (bytes) | {_fmt(b['weights_bytes'])} | {_fmt(a['weights_bytes'])} |",
                f"| CPU latency (ms, batch {_fmt(b.get('latency_batch'))}; median, p10-p90) | {md_text(latency_cell(b))} | "
                f"{md_text(latency_cell(a))} |",
                f"| test {md_text(metric)} | {_fmt(b['test'].get(metric))} | {_fmt(a['test'].get(metric))} |",
                "", f"- CPU latency: {md_text(latency_text(p))}"]
        return out
    except (KeyError, TypeError, AttributeError):
        return []


def _int5(v: Any) -> str:
    """A confusion-matrix count, right-aligned; anything else in a crafted record becomes ``?``."""
    return f"{v:5d}" if isinstance(v, int) and not isinstance(v, bool) and abs(v) < 10**12 else "    ?"


def write_card(run: dict, curve: list[dict], folder: RunFolder) -> Path:
    """Write the card of ``run`` (a :meth:`RunStore.get` dict and its epoch curve) as ``folder``'s ``model_card.md``;
    ``folder`` is one the store opened to write (``RunStore.folder(run_id, write=True)``). Raises AccessDenied for
    one opened to read."""
    path = folder.to_write().model_card
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, model_card(run, curve, folder.path), "the model card")  # a full disk: one line


def write_model_card(store, run_id: str) -> Path:
    """Write ``model_card.md`` into the run folder of ``store`` and return its path: the card is the run's, so the
    store's actor must control it (reading it, as shared mode or a teacher does, is not enough).

    Raises:
        AccessDenied: a run the store's actor does not control, worded as an unknown one.
    """
    run = store.get(run_id)
    return write_card(run, store.metrics(run["id"]), store.folder(run["id"], write=True))


def read_model_card(store, run_id: str) -> str:
    """A run's model card: the one written when it ended, else one made now from the store (a live run).

    Raises:
        RunStoreError: unknown run.
    """
    run = store.get(run_id)
    folder = store.folder(run["id"])
    written = folder.read_model_card()
    if written is not None:
        return written
    return model_card(run, store.metrics(run["id"], "epoch"), folder.path)


__all__ = ["model_card", "write_card", "write_model_card", "read_model_card"]
