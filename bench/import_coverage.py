"""Import coverage (issue 17): the project's zoo × three sources, and import time for synthetic ONNX graphs.

For every model of ``tests/interchange/zoo.py`` and every source (classic ONNX exporter, dynamo ONNX exporter,
``torch.export`` .pt2): export, import through :func:`builder.interchange.importer.import_model`, compile,
compare with the original (≤ 1e-5) and count the nodes that are LayerLab layers vs generic ``Op`` nodes. Then
the import time of synthetic ONNX chains of 100 and 1,000 operators (Gemm/Relu/Add/Erf mix, half of them
without a layer so both paths are timed). Writes the section "## Import coverage" of bench/RESULTS.md.

    .venv/bin/python bench/import_coverage.py [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.results import commit, conditions, spread, write_section  # noqa: E402

SECTION = "## Import coverage"


def coverage(names: list[str]) -> list[dict]:
    """One row per (model, source): ok, max diff, layers, Op nodes, seconds, and the error when it failed."""
    from builder.graph.compile import compile_graph
    from builder.interchange.importer import import_model
    from tests.interchange.zoo import SOURCES, build, export

    rows = []
    for name in names:
        for source in SOURCES:
            row = {"model": name, "source": source}
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    path = export(name, source, tmp)
                    t0 = time.perf_counter()
                    res = import_model(path)
                    row["seconds"] = time.perf_counter() - t0
                    model, x = build(name)
                    imported = compile_graph(res.project.graph)
                    imported.load_state_dict(res.weights)
                    imported.eval()
                    with torch.no_grad():
                        row["diff"] = float((model(x) - imported(x)).abs().max())
                    types = [n.type for n in res.project.graph.nodes if n.type != "Input"]
                    row.update(ok=row["diff"] <= 1e-5, layers=sum(t != "Op" for t in types),
                               ops=sum(t == "Op" for t in types),
                               op_labels=sorted({n.label or "" for n in res.project.graph.nodes if n.type == "Op"}))
                except Exception as e:  # noqa: BLE001  a row of the table, not a crash
                    row.update(ok=False, error=f"{type(e).__name__}: {str(e)[:160]}")
            rows.append(row)
            print(name, source, "ok" if row["ok"] else row.get("error", row.get("diff")), flush=True)
    return rows


def synthetic(n_ops: int, width: int = 16) -> bytes:
    """An ONNX chain of ``n_ops`` operators: Gemm+Relu pairs (layers) alternating with Erf+Add (Op nodes)."""
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    nodes, inits, cur = [], [], "x"
    for i in range(n_ops // 2):
        if i % 2 == 0:
            w = helper.make_tensor(f"w{i}", TensorProto.FLOAT, [width, width],
                                   rng.standard_normal(width * width).astype(np.float32) * 0.1)
            inits.append(w)
            nodes += [helper.make_node("Gemm", [cur, f"w{i}"], [f"g{i}"], transB=1),
                      helper.make_node("Relu", [f"g{i}"], [f"r{i}"])]
            cur = f"r{i}"
        else:
            nodes += [helper.make_node("Erf", [cur], [f"e{i}"]), helper.make_node("Add", [cur, f"e{i}"], [f"a{i}"])]
            cur = f"a{i}"
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", width])],
                              [helper.make_tensor_value_info(cur, TensorProto.FLOAT, ["b", width])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString() if onnx.checker.check_model(model) is None else b""


def timing(sizes=(100, 1000), repeats: int = 5) -> list[dict]:
    """Import time (verification included) of :func:`synthetic` graphs, ``repeats`` times each (sizes interleaved):
    the median with its spread (bench/results.py)."""
    from builder.interchange.importer import import_model

    data = {n: synthetic(n) for n in sizes}
    got: dict[int, list[float]] = {n: [] for n in sizes}
    res = {}
    for _ in range(repeats):
        for n in sizes:
            t0 = time.perf_counter()
            res[n] = import_model(data[n], name=f"chain{n}")
            got[n].append(time.perf_counter() - t0)
    out = []
    for n in sizes:
        types = [nd.type for nd in res[n].project.graph.nodes]
        out.append({"ops": n, "seconds": spread(got[n], unit=" s"), "nodes": len(types), "op_nodes": types.count("Op")})
        print(f"{n} ops: {out[-1]['seconds']}, {len(types)} nodes", flush=True)
    return out


def report(rows: list[dict], times: list[dict]) -> str:
    from tests.interchange.zoo import SOURCES

    by = {(r["model"], r["source"]): r for r in rows}
    models = list(dict.fromkeys(r["model"] for r in rows))
    lines = [SECTION + " (bench/import_coverage.py, issue 17)", "",
             f"The zoo (tests/interchange/zoo.py, {len(models)} small torch.nn models) exported three ways and "
             "imported; a cell "
             "is `layers/Op nodes` when the imported model matches the original within 1e-5 (float32, eval), "
             "FAIL otherwise. Op nodes are the generic operator fallback (their ATen operators are listed).", "",
             "| model | " + " | ".join(SOURCES) + " | Op nodes (operators) |", "|---|" + "---|" * (len(SOURCES) + 1)]
    for m in models:
        cells, labels = [], set()
        for s in SOURCES:
            r = by.get((m, s))
            if r is None:
                cells.append("–")
                continue
            cells.append(f"{r['layers']}/{r['ops']}" if r["ok"] else "FAIL")
            labels |= set(r.get("op_labels", []))
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {', '.join(sorted(labels)) or '–'} |")
    per = {s: sum(by[(m, s)]["ok"] for m in models if (m, s) in by) for s in SOURCES}
    lines += ["", "Passing: " + ", ".join(f"{s} {per[s]}/{len(models)}" for s in SOURCES)
              + f" (total {sum(per.values())}/{len(models) * len(SOURCES)}).", ""]
    fails = [r for r in rows if not r["ok"]]
    if fails:
        lines += ["Failures:", ""] + [f"- {r['model']} / {r['source']}: {_why(r)}" for r in fails] + [""]
    secs = [r["seconds"] for r in rows if "seconds" in r]
    if secs:
        lines += [f"Import time per zoo model and source (read, map, verify against onnxruntime/the program; one import "
                  f"each), over the {len(secs)} imports: median {spread(secs, unit=' s')}, max {max(secs):.2f} s.", ""]
    if times:
        lines += ["Synthetic ONNX chains (Gemm+Relu → layers, Erf+Add → Add layer and Op nodes), import incl. "
                  "verification, median (spread) of 5 interleaved repeats:", "",
                  "| operators | nodes | Op nodes | seconds |", "|---|---|---|---|"]
        lines += [f"| {t['ops']} | {t['nodes']} | {t['op_nodes']} | {t['seconds']} |" for t in times]
        lines.append("")
    return "\n".join(lines) + "\n"


def _why(row: dict) -> str:
    return row.get("error") or f"diff {row['diff']:.3g}"


def main(argv: list[str] | None = None) -> None:
    """Run the matrix and the timings; write bench/RESULTS.md unless --no-write."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="four models only")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    from tests.interchange.zoo import ZOO

    names = list(ZOO)[:4] if args.quick else list(ZOO)
    conditions("Import coverage: bench/import_coverage.py" + (" --quick" if args.quick else ""))
    text = report(coverage(names), timing())
    text = text.replace("\n\n", f"\n\n{time.strftime('%Y-%m-%d', time.gmtime())}, commit {commit()}.\n\n", 1)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
