"""A corpus of malformed project files, generated here, through `layerlab validate`, `summary` and `export`.

Every file must give exit code 1 (problems: exactly one line per problem) or 2 (unusable: exactly one line
on stderr), never a traceback, with bounded memory (tracemalloc peak, measured per run). Most runs use the
CLI in-process (builder.cli.main.main); a handful go through a real process. The time each run takes is
printed, never asserted (house rule); the subprocess runs have a hang guard.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from builder.cli.main import main
from builder.graph.project import MAX_FILE_BYTES, load_project
from builder.graph.shapes import infer_shapes

VALID = {"format": "layerlab", "version": 1, "name": "ok",
         "graph": {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [1, 8, 8]}},
                             {"id": "c1", "type": "Conv2d", "params": {"out_channels": 4, "kernel_size": 3}},
                             {"id": "r", "type": "ReLU"}, {"id": "f", "type": "Flatten"},
                             {"id": "fc", "type": "Linear", "params": {"out_features": 3}}],
                   "edges": [{"source": "x", "target": "c1"}, {"source": "c1", "target": "r"},
                             {"source": "r", "target": "f"}, {"source": "f", "target": "fc"}]}}
VALID_TEXT = json.dumps(VALID)


def _with(path: list, value) -> str:
    """VALID with the value at ``path`` (keys and indices) replaced."""
    doc = json.loads(VALID_TEXT)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return json.dumps(doc)


def corpus() -> dict[str, bytes]:
    """name -> file content. Truncations, wrong types, huge numbers, deep nesting, NaN, BOM, encodings,
    duplicate keys, huge files are added by the test itself (they need a folder)."""
    raw = VALID_TEXT.encode()
    files: dict[str, bytes] = {}
    for cut in sorted({1, 2, 10, 37, len(raw) // 3, len(raw) // 2, len(raw) - 2, len(raw) - 1}):
        files[f"truncated_{cut}"] = raw[:cut]
    wrong = {
        "root_list": "[]", "root_string": '"layerlab"', "root_number": "1e999", "root_null": "null",
        "format_int": _with(["format"], 7), "version_str": _with(["version"], "1"), "version_float": _with(["version"], 1.0),
        "version_bool": _with(["version"], True), "version_huge": _with(["version"], 10**300),
        "graph_list": _with(["graph"], []), "graph_str": _with(["graph"], "nodes"), "nodes_dict": _with(["graph", "nodes"], {}),
        "nodes_str": _with(["graph", "nodes"], "x"), "node_int": _with(["graph", "nodes", 0], 5),
        "id_int": _with(["graph", "nodes", 1, "id"], 3), "id_empty": _with(["graph", "nodes", 1, "id"], ""),
        "id_list": _with(["graph", "nodes", 1, "id"], ["c1"]), "type_null": _with(["graph", "nodes", 1, "type"], None),
        "params_list": _with(["graph", "nodes", 1, "params"], [1, 2]), "params_str": _with(["graph", "nodes", 1, "params"], "k=3"),
        "shape_str": _with(["graph", "nodes", 0, "params", "shape"], "1x8x8"),
        "shape_nested": _with(["graph", "nodes", 0, "params", "shape"], [[1], [8], [8]]),
        "shape_zero": _with(["graph", "nodes", 0, "params", "shape"], [0, 8, 8]),
        "shape_negative": _with(["graph", "nodes", 0, "params", "shape"], [1, -8, 8]),
        "shape_float": _with(["graph", "nodes", 0, "params", "shape"], [1, 8.5, 8]),
        "shape_huge": _with(["graph", "nodes", 0, "params", "shape"], [10**6, 10**6, 10**6]),
        "shape_long": _with(["graph", "nodes", 0, "params", "shape"], list(range(1, 100))),
        "kernel_huge": _with(["graph", "nodes", 1, "params", "kernel_size"], 10**18),
        "channels_float_huge": _with(["graph", "nodes", 1, "params", "out_channels"], 1e308),
        "channels_bool": _with(["graph", "nodes", 1, "params", "out_channels"], True),
        "edges_dict": _with(["graph", "edges"], {"a": "b"}), "edge_list": _with(["graph", "edges", 0], ["x", "c1"]),
        "edge_no_target": _with(["graph", "edges", 0], {"source": "x"}),
        "edge_port_int": _with(["graph", "edges", 0], {"source": "x", "target": "c1", "target_port": 0}),
        "edge_port_unicode": _with(["graph", "edges", 0], {"source": "x", "target": "c1", "target_port": "²"}),
        "extra_field": _with(["graph", "nodes", 1, "colour"], "red"), "position_str": _with(["graph", "nodes", 1, "position"], "0,0"),
        "label_long": _with(["graph", "nodes", 1, "label"], "l" * 5000), "name_obj": _with(["name"], {"a": 1}),
        "training_list": _with(["training"], [1]), "blocks_str": _with(["blocks"], "none"),
        "unknown_param": _with(["graph", "nodes", 1, "params", "kernel"], 3),
        "control_chars": _with(["graph", "nodes", 1, "id"], "c1\n\x1b[31mnode x: ok\r"),
    }
    files.update({k: v.encode() for k, v in wrong.items()})
    digits = "9" * 100_000
    files["int_100k_digits"] = VALID_TEXT.replace('"out_channels": 4', f'"out_channels": {digits}').encode()
    files["int_neg_5k_digits"] = VALID_TEXT.replace('"out_features": 3', '"out_features": -' + "1" * 5000).encode()
    files["float_long_mantissa"] = VALID_TEXT.replace('"out_features": 3', '"out_features": 3.' + "1" * 100_000).encode()
    files["float_huge_exponent"] = VALID_TEXT.replace('"out_features": 3', '"out_features": 1e99999999').encode()
    files["nan"] = VALID_TEXT.replace('"out_features": 3', '"out_features": NaN').encode()
    files["infinity"] = VALID_TEXT.replace('"kernel_size": 3', '"kernel_size": -Infinity').encode()
    files["deep_list"] = b"[" * 100_000 + b"]" * 100_000
    files["deep_object"] = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
    files["deep_params"] = VALID_TEXT.replace('"kernel_size": 3', '"kernel_size": ' + "[" * 900 + "]" * 900).encode()
    files["bom_utf8"] = b"\xef\xbb\xbf" + raw
    files["bom_twice"] = b"\xef\xbb\xbf\xef\xbb\xbf" + raw
    files["utf16"] = VALID_TEXT.encode("utf-16")
    files["latin1"] = json.dumps({**VALID, "name": "café"}, ensure_ascii=False).encode("latin-1")
    files["nul_bytes"] = raw[:20] + b"\x00" * 10 + raw[20:]
    files["binary"] = bytes(range(256)) * 4
    files["empty"] = b""
    files["whitespace"] = b"  \n\t "
    files["duplicate_key_root"] = b'{"format": "layerlab", "format": "layerlab", "graph": {"nodes": [], "edges": []}}'
    files["duplicate_key_node"] = VALID_TEXT.replace('"id": "c1"', '"id": "c1", "id": "c2"').encode()
    files["duplicate_node_ids"] = VALID_TEXT.replace('"id": "r"', '"id": "c1"').encode()
    files["surrogate_id"] = VALID_TEXT.replace('"id": "r"', '"id": "\\ud800"').encode()
    files["many_nodes"] = json.dumps({"graph": {"nodes": [{"id": f"n{i}", "type": "ReLU"} for i in range(6000)],
                                                "edges": []}}).encode()
    files["many_edges"] = json.dumps({"graph": {"nodes": VALID["graph"]["nodes"],
                                                "edges": [{"source": "x", "target": "c1"}] * 25_000}}).encode()
    files["long_string"] = _with(["description"], "d" * (MAX_FILE_BYTES - 2000)).encode()
    return files


STILL_VALID = {"bom_utf8", "long_string"}  # edge cases that are fine: a UTF-8 BOM, a description near the cap


def _error_count(path: Path) -> int | None:
    try:
        report = infer_shapes(load_project(path).graph)
    except Exception:
        return None
    return sum(p.severity == "error" for p in report.problems)


def _check_run(cmd: str, path: Path, capsys) -> tuple[int, float, int]:
    tracemalloc.start()
    t0 = time.perf_counter()
    code = main([cmd, str(path)])
    took = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    if path.stem in STILL_VALID:
        assert code == 0, (cmd, path.name, out.err)
        return code, took, peak
    assert code in (1, 2), (cmd, path.name, code, out.out[-500:], out.err[-500:])
    if code == 2:
        assert out.err.startswith("error: ") and len(out.err.strip().splitlines()) == 1, (cmd, path.name, out.err)
    else:
        problems = [line for line in out.out.splitlines() if line.startswith(("node ", "edge ", "graph: "))
                    and ": " in line and not line.startswith("node  ")]
        assert problems, (cmd, path.name, out.out)
        expected = _error_count(path)
        assert expected is not None and len(problems) == expected, (cmd, path.name, out.out)
    return code, took, peak


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("malformed")
    for name, content in corpus().items():
        (d / f"{name}.json").write_bytes(content)
    with open(d / "sparse_1gb.json", "wb") as f:  # reports 1 GiB, holds nothing: refused by size, never read
        f.truncate(2**30)
    (d / "over_limit.json").write_bytes(b'{"description": "' + b"x" * (MAX_FILE_BYTES + 10) + b'"}')
    (d / "a_folder.json").mkdir()
    return d


def test_corpus_is_broad(corpus_dir):
    assert len(list(corpus_dir.iterdir())) >= 75


@pytest.mark.parametrize("cmd", ["validate", "summary", "export"])
def test_every_malformed_file_gives_one_line_per_problem(corpus_dir, capsys, cmd):
    slowest, biggest = (0.0, ""), (0, "")
    for path in sorted(corpus_dir.iterdir()):
        _, took, peak = _check_run(cmd, path, capsys)
        slowest = max(slowest, (took, path.name))
        biggest = max(biggest, (peak, path.name))
        # memory stays proportional to the 20 MiB file cap (json's objects for the largest accepted file)
        assert peak < 12 * MAX_FILE_BYTES, (path.name, peak)
    with capsys.disabled():
        print(f"\n{cmd}: slowest {slowest[1]} {slowest[0]:.2f} s, largest peak {biggest[1]} {biggest[0] / 2**20:.1f} MiB")


@pytest.mark.parametrize("name, cmd", [("truncated_37", "validate"), ("int_100k_digits", "export"),
                                       ("deep_list", "summary"), ("utf16", "validate"),
                                       ("control_chars", "validate"), ("sparse_1gb", "export")])
def test_a_handful_in_a_real_process(corpus_dir, name, cmd):
    path = corpus_dir / f"{name}.json"
    res = subprocess.run([sys.executable, "-m", "builder", cmd, str(path)], capture_output=True, text=True,
                         timeout=120)  # a hang guard, not a timing assertion
    assert res.returncode in (1, 2) and "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.strip().splitlines() if res.returncode == 2 else res.stdout.strip().splitlines()
    assert lines and all("\x1b" not in line and "\r" not in line for line in lines)
    if res.returncode == 2:
        assert len(lines) == 1 and lines[0].startswith("error: ")
