"""builder.graph.latency: every node that builds a module is timed; the CLI reports it; the harness (warm-up,
interleaving, pinned threads, spreads, verdicts) is checked on a fake clock (no real timing is asserted)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import builder
from builder.cli.main import main as cli_main
from builder.errors import LayerLabError
from builder.graph.compile import compile_graph, module_names
from builder.graph.latency import (
    NO_DIFFERENCE,
    Conditions,
    Timing,
    compare_latency,
    comparison_text,
    module_latency,
    node_latency,
    time_calls,
)
from tests.fuzz_budget import budget


@pytest.mark.parametrize("name", ["cnn", "resnet", "transformer"])
def test_every_module_node_is_timed(name):
    graph = builder.load_template(name).graph
    lat = node_latency(graph, batch_size=4, repeats=2, warmup=1)
    model = compile_graph(graph)
    called = {n.target for n in model.graph.nodes if n.op == "call_module"}  # a position table is only read
    with_module = {nid for nid, attr in module_names(graph).items() if attr in called}
    assert set(lat.per_node) == with_module
    assert all(s > 0 for s in lat.per_node.values()) and lat.total_s > 0
    rows = lat.rows()
    assert [r["ms"] for r in rows] == sorted((r["ms"] for r in rows), reverse=True)


def test_counts_are_checked_before_running():
    with pytest.raises(LayerLabError, match="repeats"):
        node_latency(builder.load_template("mlp").graph, repeats=0)


def test_summary_latency_column(tmp_path, capsys):
    path = tmp_path / "mlp.json"
    path.write_text(builder.load_template("mlp").model_dump_json())
    assert cli_main(["summary", str(path), "--latency", "--repeats", "2", "--batch-size", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["latency"]["device"] == "cpu" and out["latency"]["batch_size"] == 4
    timed = {n["id"]: n["latency_ms"] for n in out["nodes"]}
    assert timed["fc1"] > 0 and timed["input"] is None  # the Input builds no module
    assert cli_main(["summary", str(path), "--latency", "--repeats", "2"]) == 0
    assert "forward pass:" in capsys.readouterr().out


# ------------------------------------------------------------------ the timing harness, on a fake clock (issue 34)
class FakeClock:
    """A clock that only moves when a workload says how long it took: timings of known spread, no real time."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def workload(self, name: str, durations: list[float], log: list[str]):
        it = iter(durations)

        def run() -> None:
            log.append(name)
            self.t += next(it)
        return run


def test_time_calls_warms_up_interleaves_pins_threads_and_records_the_load():
    """The cold first call (88 ms in the issue's six runs) is warm-up; the rest give the median and the p10-p90
    that numpy computes from the same durations; two workloads alternate which one runs first."""
    clock, log = FakeClock(), []
    a = [0.088] + [0.001 * (1 + i % 10) for i in range(20)]  # 1..10 ms twice after one cold call
    b = [0.050] + [0.002 * (1 + i % 10) for i in range(20)]
    threads_seen = []
    wa, wb = clock.workload("a", a, log), clock.workload("b", b, log)
    calls = {"a": lambda: (threads_seen.append(torch.get_num_threads()), wa()),
             "b": lambda: (threads_seen.append(torch.get_num_threads()), wb())}
    old = torch.get_num_threads()
    loads = iter([0.5, 0.75])
    samples, cond = time_calls(calls, repeats=20, warmup=1, threads=1, clock=clock, loadavg=lambda: next(loads))
    assert samples["a"] == pytest.approx(a[1:]) and samples["b"] == pytest.approx(b[1:])
    assert log[:2] == ["a", "b"] and log[2:6] == ["a", "b", "b", "a"]  # warm-up, then rotating rounds
    assert set(threads_seen) == {1} and torch.get_num_threads() == old
    assert cond == Conditions(threads=1, warmup=1, load=[0.5, 0.75])
    t = Timing.of(samples["a"])
    assert (t.median_s, t.p10_s, t.p90_s) == pytest.approx(tuple(np.percentile(a[1:], [50, 10, 90])))
    assert t.repeats == 20 and "p10-p90 1.900-9.100" in t.text()


@settings(max_examples=budget(25), deadline=None)
@given(base=st.lists(st.floats(1e-4, 1e-2), min_size=5, max_size=30), factor=st.floats(0.2, 5.0))
def test_a_difference_is_called_only_when_the_spreads_separate(base, factor):
    """Two deterministic workloads: ``after`` takes ``factor`` times ``before``'s durations. The verdict follows
    numpy's p10/p90 of the known durations: faster/slower when they separate, otherwise no difference."""
    clock, log = FakeClock(), []
    after = [d * factor for d in base]
    cmp = compare_latency(clock.workload("before", base, log), clock.workload("after", after, log),
                          batch_size=8, repeats=len(base), warmup=0, clock=clock, loadavg=lambda: None)
    b10, b90 = np.percentile(base, [10, 90])
    a10, a90 = np.percentile(after, [10, 90])
    if a90 < b10 * (1 - 1e-9):
        assert cmp.verdict.startswith("faster")
    elif a10 > b90 * (1 + 1e-9):
        assert cmp.verdict.startswith("slower")
    elif b10 * (1 + 1e-9) < a90 and a10 < b90 * (1 - 1e-9):
        assert cmp.verdict == NO_DIFFERENCE
    assert cmp.conditions.load is None and comparison_text(cmp.to_dict()) == cmp.text()


def test_overlapping_spreads_are_no_measurable_difference_even_with_different_medians():
    """The issue's pruned network was reported slower from one noisy pair of medians: spreads 1-10 ms and 2-11 ms
    overlap, so the medians' gap is not called a difference."""
    clock, log = FakeClock(), []
    before = [0.001 * (1 + i % 10) for i in range(10)]
    after = [d + 0.001 for d in before]
    cmp = compare_latency(clock.workload("b", before, log), clock.workload("a", after, log), batch_size=1,
                          repeats=10, warmup=0, clock=clock)
    assert cmp.after.median_s > cmp.before.median_s and cmp.verdict == NO_DIFFERENCE


def test_node_times_and_their_spread_come_from_the_hooks_on_the_same_clock():
    """Modules that advance the fake clock by known durations: each node's median and p10-p90, and the whole
    pass's, are those durations' (no real time is read)."""
    clock = FakeClock()

    class Step(torch.nn.Module):
        def __init__(self, durations):
            super().__init__()
            self.d = iter(durations)

        def forward(self, x):
            clock.t += next(self.d)
            return x

    fc1 = [0.010] * 2 + [0.001 * (1 + i) for i in range(10)]  # 2 warm-up passes, then 1..10 ms
    fc2 = [0.020] * 2 + [0.003] * 10
    model = torch.nn.Sequential()
    model.add_module("m1", Step(fc1))
    model.add_module("m2", Step(fc2))
    lat = module_latency(model, [torch.zeros(4, 2)], {"fc1": "m1", "fc2": "m2"}, repeats=10, warmup=2, clock=clock,
                         loadavg=lambda: 1.0)
    assert lat.per_node["fc1"] == pytest.approx(np.median(fc1[2:]))
    assert lat.spread["fc1"] == pytest.approx(list(np.percentile(fc1[2:], [10, 90])))
    assert lat.spread["fc2"] == pytest.approx([0.003, 0.003])
    totals = [x + y for x, y in zip(fc1[2:], fc2[2:])]
    assert (lat.total_s, lat.total_p10_s, lat.total_p90_s) == pytest.approx(tuple(np.percentile(totals, [50, 10, 90])))
    assert lat.threads == 1 and lat.warmup == 2 and lat.load == [1.0, 1.0] and lat.batch_size == 4
    assert "p10-p90" in lat.text() and "1 thread" in lat.text()


def test_summary_latency_reports_the_spread_threads_and_load(tmp_path, capsys):
    path = tmp_path / "mlp.json"
    path.write_text(builder.load_template("mlp").model_dump_json())
    assert cli_main(["summary", str(path), "--latency", "--repeats", "3", "--batch-size", "4", "--threads", "1",
                     "--json"]) == 0
    lat = json.loads(capsys.readouterr().out)["latency"]
    assert lat["threads"] == 1 and lat["warmup"] == 3 and lat["total_p10_ms"] <= lat["total_ms"] <= lat["total_p90_ms"]
    assert lat["load"] is None or len(lat["load"]) == 2
    assert cli_main(["summary", str(path), "--latency", "--repeats", "3"]) == 0
    out = capsys.readouterr().out
    assert "p10-p90" in out and "1 thread" in out and "warm-up" in out


def test_the_cost_overlay_shows_each_node_time_with_its_spread_and_the_conditions():
    from builder.graph.cost import canvas_annotations
    from builder.graph.shapes import infer_shapes

    graph = builder.load_template("mlp").graph
    rec = {"per_node": {"fc1": 0.002, "fc2": 0.001}, "spread": {"fc1": [0.0015, 0.003], "fc2": [0.001, 0.001]},
           "threads": 1, "warmup": 2, "load": [0.4, 0.6], "repeats": 10, "batch_size": 32}
    ann = canvas_annotations(graph, infer_shapes(graph), latency=rec)
    assert ann["nodes"]["fc1"]["cost"]["latency"][0] == "2 ms (p10-p90 1.5-3)"
    assert "1 thread" in ann["summary"]["latency"] and "load 0.40 -> 0.60" in ann["summary"]["latency"]
    old = canvas_annotations(graph, infer_shapes(graph), latency={"fc1": 0.002})  # a record from before spreads
    assert old["nodes"]["fc1"]["cost"]["latency"][0] == "2 ms (no spread recorded)"
