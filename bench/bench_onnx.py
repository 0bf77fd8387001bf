"""Model exchange benchmarks (issue 10).

1. ONNX import time (read, fold, map, validate, compile, place weights) for a 100-layer and a 1,000-layer
   graph (Gemm/Relu chains written with onnx.helper), without and with the onnxruntime comparison.
   Medians of interleaved repeats with their spread (p10-p90; min-max below 5 repeats), after the conditions
   they ran under (bench/results.py). Targets: < 1 s and < 5 s.
2. Dynamic int8 quantization of the MLP (moons), CNN (digits) and LSTM (sequence) templates trained briefly:
   file size ratio int8 ÷ float32 and the test metric before/after (onnxruntime on the held-out split).

Run: python bench/bench_onnx.py [--repeats N] [--skip-int8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import conditions, spread  # noqa: E402
from builder.interchange.importer import import_model  # noqa: E402


def chain(layers: int, width: int = 16):
    """``layers`` ONNX ops: Gemm and Relu alternating (layers/2 Linear + layers/2 ReLU in LayerLab)."""
    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i in range(layers // 2):
        w = numpy_helper.from_array((rng.standard_normal((width, width)) * 0.3).astype(np.float32), f"fc{i}.weight")
        b = numpy_helper.from_array(np.zeros(width, np.float32), f"fc{i}.bias")
        inits += [w, b]
        nodes.append(helper.make_node("Gemm", [prev, w.name, b.name], [f"h{i}"], name=f"fc{i}", transB=1))
        nodes.append(helper.make_node("Relu", [f"h{i}"], [f"a{i}"], name=f"act{i}"))
        prev = f"a{i}"
    g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
                          [helper.make_tensor_value_info(prev, TensorProto.FLOAT, ["batch", width])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)


def bench_import(repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for n in (100, 1000):
            files[n] = Path(tmp) / f"chain{n}.onnx"
            files[n].write_bytes(chain(n).SerializeToString())
        import_model(files[100])  # warm imports (onnx, onnxruntime)
        times: dict[tuple[int, bool], list[float]] = {(n, v): [] for n in files for v in (False, True)}
        for _ in range(repeats):  # interleaved
            for n, path in files.items():
                for verify in (False, True):
                    t = time.perf_counter()
                    res = import_model(path, verify=verify)
                    times[(n, verify)].append(time.perf_counter() - t)
                    assert res.report["nodes"] == n + 1
        conditions(f"ONNX import: bench/bench_onnx.py --repeats {repeats}")
        print(f"ONNX import, {repeats} interleaved repeats: median (spread)")
        for n in files:
            target = 1.0 if n == 100 else 5.0
            print(f"  {n:>5} layers: {spread(times[(n, False)], unit=' s', digits=3)} (target < {target:g} s); with "
                  f"the onnxruntime comparison {spread(times[(n, True)], unit=' s', digits=3)}")
        ratio = [b / a for a, b in zip(times[(100, False)], times[(1000, False)])]
        print(f"  1000 / 100 layers, per repeat: {spread(ratio, digits=1)}")

def bench_int8() -> None:
    import builder
    from builder.data.access import SYSTEM
    from builder.interchange.onnx_export import quantize_run
    from builder.runs.pipeline import run_training
    from builder.runs.store import RunStore

    cases = [("mlp", "moons", 30), ("cnn", "digits", 10), ("lstm", "sequence", 8)]
    print("Dynamic int8 (onnxruntime.quantization), test split scored with onnxruntime")
    print(f"  {'template':<10}{'dataset':<10}{'fp32 bytes':>12}{'int8 bytes':>12}{'ratio':>8}{'metric':>10}"
          f"{'before':>9}{'after':>9}{'delta':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(tmp, actor=SYSTEM)
        for name, ds, epochs in cases:
            rid = run_training(builder.load_template(name), ds, {"epochs": epochs, "seed": 0}, store=store).run_id
            q = quantize_run(store, rid)
            print(f"  {name:<10}{ds:<10}{q['bytes_before']:>12,}{q['bytes_after']:>12,}{q['ratio']:>8.3f}"
                  f"{q['metric']:>10}{q['test_before']:>9.4f}{q['test_after']:>9.4f}{q['delta']:>+9.4f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-int8", action="store_true")
    args = ap.parse_args()
    bench_import(args.repeats)
    if not args.skip_int8:
        bench_int8()


if __name__ == "__main__":
    main()
