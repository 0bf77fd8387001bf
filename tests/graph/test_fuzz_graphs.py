"""The graph fuzzer: drawn projects (tests/fuzz_graphs.py) through load, analysis, compile, forward, backward
and export.

- In process (hypothesis, shrinks a failure to a small graph): loading and analysis raise nothing but the
  LayerLabError hierarchy; a rejected graph has every problem located (node or edge) on one printable line,
  and compile refuses it.
- In child processes (:func:`tests.fuzz_graphs.run_in_children`): every drawn graph again, and each accepted
  one compiled and run forward (eval, batch 1 and 3) and forward + backward (train, batch 3), with the
  inferred output shapes, and exported to a ``.py`` that gives the same outputs. A segfault or a hang is
  caught as the child's death and attributed to the graph it was running. Counted and required to be zero:
  unhandled exceptions, broken contracts, accepted-but-fails, shape mismatches, crashes.

- Every accepted graph also takes two Adam and two SGD steps, its project file is saved and loaded back, and
  under ``make fuzz`` (``LAYERLAB_FUZZ_DEEP=1``) it is exported to ONNX, run in onnxruntime and imported back.
- The built-in templates mutated (:func:`tests.fuzz_graphs.template_graph`: text, time series, causal decoders,
  LoRA, GAN/VAE parts, norms after Permute/Reshape): 16 graphs (seed 30) in CI, 1,000 fresh under ``fuzz``.
- The generic operator node with its FULL allow-list (:func:`tests.fuzz_graphs.op_graph`: any allow-listed ATen
  operator, overload and arguments drawn from its schema, hostile literals included), the same way.

How many: the in-process tests take their examples from the hypothesis profile (tests/conftest.py; the operator
one at most 60); the child-process runs take fixed samples of 300 graphs (seed 21) and 400 operator graphs (seed 28)
under ``dev``/``ci`` and 10,000 and 3,000 fresh ones under ``fuzz`` (``make fuzz``; the seeds are printed).
``LAYERLAB_FUZZ_GRAPHS`` / ``LAYERLAB_FUZZ_SEED`` / ``LAYERLAB_FUZZ_JOBS`` override (``LAYERLAB_FUZZ_OP_GRAPHS``
the operator sample). Failing project files are written to ``test-artifacts/fuzz-failures.jsonl``.
"""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, event, given, settings

from builder import compile_graph, infer_shapes, load_project
from builder.errors import GraphError, LayerLabError
from builder.escape import terminal_line
from tests.fuzz_budget import budget
from tests.fuzz_graphs import (
    FAILURES,
    GRAPH_LEVEL,
    _budget,
    draw_projects,
    op_project_text,
    project_text,
    run_in_children,
    save_failures,
    template_project_text,
)


def check_rejections(text: str) -> str:
    """Load and analyse one project file (in process); returns what happened (for hypothesis.event)."""
    try:
        project = load_project(text)
    except LayerLabError as e:
        assert "\n" not in terminal_line(str(e))
        return "unreadable"
    report = infer_shapes(project.graph, _budget())  # must never raise
    if report.ok:
        return "accepted"  # compiled and run in a child process by the test below
    for p in report.problems:
        assert p.node is not None or p.edge is not None or p.code in GRAPH_LEVEL, p
        assert p.message and "\n" not in terminal_line(str(p))
    try:
        compile_graph(project.graph, _budget())
    except GraphError as e:
        assert e.problems
    else:
        raise AssertionError("compile_graph accepted a graph that validation rejects")
    return "budget" if all(p.code == "budget" for p in report.problems if p.severity == "error") else "rejected"


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                HealthCheck.filter_too_much])
@given(project_text())
def test_drawn_projects_load_and_validate_with_located_problems(text):
    event(check_rejections(text))


@settings(max_examples=budget(60), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                   HealthCheck.filter_too_much])
@given(op_project_text())
def test_drawn_operator_graphs_validate_with_located_problems(text):
    """Any allow-listed operator, any drawn call: analysis never raises, and every refusal is located."""
    event(check_rejections(text))


def _sample(request, ops: bool = False, templates: bool = False) -> tuple[int, int, int]:
    """(graphs, seed, jobs) for the profile in use (``ops``: the operator graphs' sample; ``templates``: the
    mutated templates')."""
    nightly = request.config.getoption("hypothesis_profile", None) == "fuzz"
    key, nightly_n, ci_n, ci_seed = ("LAYERLAB_FUZZ_OP_GRAPHS", 3_000, 400, 28) if ops else \
        ("LAYERLAB_FUZZ_TEMPLATE_GRAPHS", 1_000, 16, 30) if templates else \
        ("LAYERLAB_FUZZ_GRAPHS", 10_000, 300, 21)
    n = int(os.environ.get(key, nightly_n if nightly else ci_n))
    seed = int(os.environ.get("LAYERLAB_FUZZ_SEED", int.from_bytes(os.urandom(4), "little") if nightly else ci_seed))
    jobs = int(os.environ.get("LAYERLAB_FUZZ_JOBS", (os.cpu_count() or 1) if nightly else 1))
    return n, seed, jobs


def _say(capsys, line: str) -> None:
    with capsys.disabled():  # shown by `make fuzz` and `make test` alike (lost in pytest-xdist workers)
        print(line)


CRASH = "PLANTED-CRASH"  # the child segfaults on the graph holding this (LAYERLAB_FUZZ_CRASH_ON)


def _judge(capsys, res, seed: int, title: str, total: int) -> None:
    """Print a campaign's counts, keep its failing graphs in test-artifacts and assert: every one of ``total``
    graphs was read, refused, over budget or accepted, and none failed."""
    _say(capsys, f"\n{title} (seed {seed}): {res.line()}")
    if res.failures:
        save_failures(res, seed)
    shown = "\n".join(f"  graph {f['i']}: {f['failure']}: {f['detail']}" for f in res.failures[:10])
    assert sum(res.counts[k] for k in ("unreadable", "rejected", "budget", "accepted")) == total
    assert not any(res.counts[k] for k in FAILURES), f"{res.line()} (seed {seed}; files in test-artifacts)\n{shown}"


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_accepted_graphs_compile_run_forward_backward_and_export_in_child_processes(request, monkeypatch, capsys):
    n, seed, jobs = _sample(request)
    texts = draw_projects(n, seed)
    # one planted segfault proves that a crash is caught, attributed to its graph, and the rest still runs
    planted = len(texts) // 2
    texts.insert(planted, json.dumps({"format": "layerlab", "version": 1, "name": CRASH,
                                      "graph": {"nodes": [], "edges": []}}))
    monkeypatch.setenv("LAYERLAB_FUZZ_CRASH_ON", CRASH)
    res = run_in_children(texts, jobs=jobs)
    crashes = [f for f in res.failures if f["failure"] == "crash"]
    assert [f["i"] for f in crashes if CRASH in f["text"]] == [planted], crashes
    assert "signal 11" in next(f["detail"] for f in crashes if CRASH in f["text"])
    res.counts["crash"] -= 1
    res.failures = [f for f in res.failures if CRASH not in f["text"]]
    _judge(capsys, res, seed, "graph fuzzer", len(texts) - 1)
    # the generator still produces runnable graphs: a sixth at least since Op calls along the batch are refused
    # (op_batch.py; seed 21 accepts 111 of 300, in any process: fuzz_graphs._no_local_constants)
    assert res.counts["accepted"] > n // 6


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_operator_graphs_of_the_full_allow_list_compile_run_and_export_in_child_processes(request, capsys):
    """The generic operator node with every allow-listed operator: a graph validation accepts compiles, runs
    forward and backward with the inferred shapes and exports; nothing crashes."""
    n, seed, jobs = _sample(request, ops=True)
    texts = draw_projects(n, seed, op_project_text())
    res = run_in_children(texts, jobs=jobs)
    _judge(capsys, res, seed, "operator fuzzer, full allow-list", n)
    # the generator still reaches graphs that run (most calls are refused): drawn without Hypothesis's local constants
    # (fuzz_graphs._no_local_constants), seeds 28-33 accept 5, 27, 34, 24, 29, 32 of 400
    assert res.counts["accepted"] > n // 100


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_mutated_templates_and_their_parts_compile_train_and_export_in_child_processes(request, capsys):
    """The built-in templates (text with token ids and padding masks, time series, causal decoders, LoRA, GAN and
    VAE with their losses) with redrawn sizes, cut to one node's ancestors, or with a Permute/Reshape and a
    normalisation spliced in: what validation accepts compiles, runs, takes Adam and SGD steps and exports."""
    n, seed, jobs = _sample(request, templates=True)
    texts = draw_projects(n, seed, template_project_text())
    res = run_in_children(texts, jobs=jobs)
    _judge(capsys, res, seed, "template fuzzer", n)
    assert res.counts["accepted"] >= n // 4


def _small_project(*layers: dict):
    nodes = [{"id": "x", "type": "Input", "params": {"shape": [2, 5]}}, *layers]
    edges = [{"source": a["id"], "target": b["id"], **({"target_port": "0"} if b["type"] == "Op" else {})}
             for a, b in zip(nodes, nodes[1:])]
    return load_project(json.dumps({"format": "layerlab", "version": 1, "graph": {"nodes": nodes, "edges": edges}}))


def test_the_fuzzers_one_loss_is_checked_both_ways():
    """One loss for backward and the optimizer steps (tests.fuzz_graphs._probe_loss): fresh weights in a graph of
    layers that stay finite must give a finite loss (before, only 'a finite loss leaves finite parameters' was
    checked), and finite outputs never overflow the loss (float64: 3e38 times a weight overflowed float32)."""
    import torch

    from tests.fuzz_graphs import _probe_loss

    finite = _small_project({"id": "l", "type": "Linear", "params": {"out_features": 3}})
    logs = _small_project({"id": "l", "type": "Log"})
    bad = torch.tensor([[float("nan"), 1.0]], requires_grad=True)
    with pytest.raises(RuntimeError, match="non-finite loss"):
        _probe_loss(finite, (bad,), seed=0, fresh=True)
    assert not torch.isfinite(_probe_loss(logs, (bad,), seed=0, fresh=True))  # a Log may leave the finite numbers
    assert not torch.isfinite(_probe_loss(finite, (bad,), seed=0, fresh=False))  # trained weights: not claimed
    big = torch.full((1, 8), 3e38, requires_grad=True)
    assert torch.isfinite(_probe_loss(finite, (big,), seed=0, fresh=True))
    assert _probe_loss(finite, (torch.ones(1, 2),), seed=0, fresh=True) is None  # nothing carries a gradient


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_deep_fuzzer_takes_a_refusal_validation_foretold_and_only_that(monkeypatch):
    """Under LAYERLAB_FUZZ_DEEP an export refused for a node validation warned has no ONNX form is an honest
    refusal (before: 'accepted_fails: export ONNX: ExportError: torch.onnx.export failed ... ConversionError')."""
    import tests.fuzz_graphs as fz

    monkeypatch.setattr(fz, "DEEP", True)
    pool = {"id": "pool", "type": "Op", "params": {"op": "aten.adaptive_max_pool1d", "args": '[{"t": 0}, [3]]',
                                                   "outputs": 2}}
    assert fz.check_graph(_small_project(pool).to_json()) == ("accepted", None, "")
    monkeypatch.setattr("builder.interchange.onnx_export.no_onnx_nodes", lambda graph: [])  # refused unforetold
    outcome, failure, detail = fz.check_graph(_small_project(pool).to_json())
    assert (outcome, failure) == ("accepted", "accepted_fails") and "node pool" in detail, detail


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_deep_fuzzer_takes_the_refusal_of_a_bidirectional_masked_recurrent_layer(monkeypatch):
    """Its validation warning says it has no ONNX form like every such warning, so export_onnx refuses it by name
    before exporting (before: 'accepted_fails: export ONNX: ExportError: ONNX export cannot express a
    bidirectional recurrent layer with a padding mask', deep fuzzer, seed 969781063)."""
    import tests.fuzz_graphs as fz
    from builder.graph.spec import PADDING_MASK

    monkeypatch.setattr(fz, "DEEP", True)
    nodes = [{"id": "x", "type": "Input", "params": {"shape": [5], "modality": "tokens", "vocab_size": 9}},
             {"id": "emb", "type": "Embedding", "params": {"embedding_dim": 4}},
             {"id": "r", "type": "GRU", "params": {"hidden_size": 3, "bidirectional": True}}]
    edges = [{"source": "x", "target": "emb"}, {"source": "emb", "target": "r"},
             {"source": "x", "source_port": PADDING_MASK, "target": "r", "target_port": PADDING_MASK}]
    text = json.dumps({"format": "layerlab", "version": 1, "graph": {"nodes": nodes, "edges": edges}})
    assert fz.check_graph(text) == ("accepted", None, "")
