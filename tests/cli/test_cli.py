import json
import subprocess
import sys

import pytest

from builder.cli.main import main
from builder.data.access import SYSTEM


def run(*args):
    return subprocess.run([sys.executable, "-m", "builder", *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.fixture
def ex_file(tmp_path, example_project):
    p = tmp_path / "ex.json"
    p.write_text(json.dumps(example_project))
    return p


def test_validate_ok(ex_file):
    r = run("validate", ex_file)
    assert r.returncode == 0 and r.stdout.startswith("ok:")


def test_validate_problems(tmp_path, example_project):
    example_project["graph"]["nodes"][1]["params"]["out_channels"] = 0
    example_project["graph"]["nodes"][5]["type"] = "Linaer"
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(example_project))
    r = run("validate", p)
    assert r.returncode == 1
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("node c1: `out_channels` must be ≥ 1")
    assert any(line.startswith("node fc: unknown layer type") and "Linear" in line for line in lines)
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("content", ["{", "", "[]", '{"format": "layerlab", "version": 7}', "\x00\x01"])
def test_malformed_files_exit_2_with_one_line(tmp_path, content, capsys):
    p = tmp_path / "x.json"
    p.write_text(content)
    for cmd in ("validate", "summary", "export"):
        assert main([cmd, str(p)]) == 2, (cmd, content)
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err


def test_malformed_file_in_a_real_process(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"format": "layerlab", "graph": {"nodes": [')
    r = run("summary", p)
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_missing_file(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.json")]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "template name (mlp, cnn" in err  # what to give instead


def test_every_command_that_reads_a_network_takes_a_template_name(tmp_path, capsys):
    """`validate mlp`, `summary cnn`, `export mlp` read the template as `train mlp` and `tune mlp` do (they said
    "mlp: no such file")."""
    assert main(["validate", "mlp"]) == 0
    assert main(["summary", "cnn"]) == 0
    assert main(["export", "mlp", "-o", str(tmp_path / "m.py")]) == 0 and (tmp_path / "m.py").is_file()
    assert "no such file" not in capsys.readouterr().err


def test_summary(ex_file, capsys):
    assert main(["summary", str(ex_file)]) == 0
    out = capsys.readouterr().out
    assert "c1" in out and "(B, 16, 8, 8)" in out and "10,410" in out
    assert main(["summary", str(ex_file), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total_params"] == 10410
    assert [n["id"] for n in data["nodes"]] == ["x", "c1", "r1", "sum", "f", "fc"]
    assert data["nodes"][1] == {"id": "c1", "type": "Conv2d", "status": "ok", "shape": "(B, 16, 8, 8)",
                                "output_shape": [16, 8, 8], "params": 160, "macs": 9_216, "inferred": {"in_channels": 1}}


def test_export_py_and_safetensors(ex_file, tmp_path):
    out = tmp_path / "model.py"
    assert main(["export", str(ex_file), "--format", "py", "-o", str(out)]) == 0
    r = subprocess.run([sys.executable, str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "(2, 10)" in r.stdout
    w = tmp_path / "w.safetensors"
    assert main(["export", str(ex_file), "--format", "safetensors", "-o", str(w)]) == 0
    from safetensors.torch import load_file
    assert "fc.weight" in load_file(str(w))


def test_templates(tmp_path, capsys):
    assert main(["templates"]) == 0
    out = capsys.readouterr().out
    for name in ("mlp", "cnn", "resnet", "lstm", "transformer", "autoencoder"):
        assert name in out
    target = tmp_path / "cnn.json"
    assert main(["templates", "cnn", "-o", str(target)]) == 0
    assert main(["validate", str(target)]) == 0
    assert main(["templates", "nope"]) == 2


def test_datasets_listed(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("digits", "iris", "wine", "breast_cancer", "diabetes", "moons", "circles", "spirals", "xor",
                 "blobs", "sequence"):
        assert name in out


# ------------------------------------------------------------------------------------------- issue 9 regressions
HOSTILE = 'evil\n"""\x1b[31m\u202e\\N{x}'


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


def test_a_failed_runs_message_is_one_terminal_line(capsys):
    """A run's message (a failure that quotes a node name, a column, a file's text) was printed raw by `train`:
    a newline forged lines, an escape sequence recoloured or cleared the terminal."""
    import argparse
    from types import SimpleNamespace

    from builder.cli.train import _print_result

    result = SimpleNamespace(status="failed", message=f"node {HOSTILE!s}: broke", test=None, run_id="r1")
    _print_result(result, argparse.Namespace(json=False))
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out and _lines(out)[0].startswith("run failed: node evil\\n")


def test_problem_lines_are_escaped_for_the_terminal(tmp_path, capsys):
    """Regression: node ids with newlines or ANSI escapes printed raw (forged lines, recoloured terminal)."""
    bad_id = "c\nnode x: ok\x1b[2J"
    proj = {"name": HOSTILE, "graph": {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [4]}},
                                                 {"id": bad_id, "type": "Linear", "params": {"out_features": 0}},
                                                 {"id": "a\rb", "type": "Conv2D"}],
                                       "edges": [{"source": "x", "target": bad_id}, {"source": bad_id, "target": "a\rb"}]}}
    p = tmp_path / "hostile.json"
    p.write_text(json.dumps(proj))
    for cmd in (["validate", str(p)], ["summary", str(p)], ["export", str(p)]):
        assert main(cmd) == 1
        out = capsys.readouterr()
        text = out.out + out.err
        assert "\x1b" not in text and "\r" not in text and "\u202e" not in text
        problem_lines = [line for line in _lines(out.out) if line.startswith(("node ", "edge ")) and ": " in line]
        assert len(problem_lines) == 2, out.out  # one line per problem, nothing forged
        assert any("c\\nnode x: ok\\x1b[2J" in line for line in problem_lines)


@pytest.mark.parametrize("target", ["", "missing/dir/model.py", "FOLDER", "FOLDER/"])
@pytest.mark.parametrize("cmd", ["py", "safetensors", "templates"])
def test_bad_output_paths_exit_2_with_one_line(tmp_path, ex_file, capsys, monkeypatch, target, cmd):
    """Regression: -o '' / a folder / a missing folder raised IsADirectoryError or FileNotFoundError."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FOLDER").mkdir()
    argv = {"py": ["export", str(ex_file), "--format", "py", "-o", target],
            "safetensors": ["export", str(ex_file), "--format", "safetensors", "-o", target],
            "templates": ["templates", "cnn", "-o", target]}[cmd]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(_lines(err)) == 1 and err.startswith("error: ") and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FOLDER", "ex.json"]  # nothing written
    assert not any((tmp_path / "FOLDER").iterdir())


@pytest.mark.parametrize("name, fmt", [("m.py", "py"), ("w.safetensors", "safetensors")])
def test_export_infers_the_format_from_the_suffix(ex_file, tmp_path, name, fmt):
    out = tmp_path / name
    assert main(["export", str(ex_file), "-o", str(out)]) == 0
    head = out.read_bytes()[:200]
    assert head.startswith(b'"""') if fmt == "py" else not head.startswith(b'"""')


@pytest.mark.parametrize("argv", [["-o", "w.bin"], ["--format", "py", "-o", "w.safetensors"],
                                  ["--format", "safetensors", "-o", "m.py"]])
def test_export_refuses_an_unclear_or_contradicting_format(ex_file, tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    assert main(["export", str(ex_file), *argv]) == 2
    assert len(_lines(capsys.readouterr().err)) == 1 and not any(tmp_path.glob("[mw].*"))


def test_run_export_listing_and_card_with_hostile_names(tmp_path, capsys):
    """export --run -o w.safetensors without --format wrote code, then overwrote it with the weights; runs
    list/show printed names raw; the Runs page and export --run use the same (escaping) exporter."""
    import torch
    from safetensors.torch import load_file

    from builder.graph.templates import load_template
    from builder.runs.pipeline import run_training
    from builder.runs.store import RunStore

    torch.set_num_threads(1)
    project = load_template("mlp")
    project.name = HOSTILE
    store = RunStore(tmp_path, actor=SYSTEM)
    r = run_training(project, "moons", {"epochs": 1}, store, name=HOSTILE)
    ws = ["--workspace", str(tmp_path)]

    w = tmp_path / "w.safetensors"
    assert main(["export", "--run", r.run_id, "-o", str(w), *ws]) == 0
    assert "fc1.weight" in load_file(str(w))  # weights, not Python source
    assert not (tmp_path / "w.py").exists()
    code = tmp_path / "model.py"
    assert main(["export", "--run", r.run_id, "-o", str(code), *ws]) == 0
    compile(code.read_text(encoding="utf-8"), str(code), "exec")  # the hostile project name cannot break it
    assert (tmp_path / "model.safetensors").is_file()
    assert main(["export", "--run", r.run_id, "--format", "py", "-o", str(w), *ws]) == 2  # would overwrite
    capsys.readouterr()

    assert main(["runs", "list", *ws]) == 0
    assert main(["runs", "show", r.run_id, *ws]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out and "evil\\n" in out
    assert all(not line.startswith('"""') for line in out.splitlines())


# ---- builder/cli/common.py: the exit codes, the project argument; no import cycles in cli/ and graph/

def _archmap():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "tools" / "archmap.py"
    spec = importlib.util.spec_from_file_location("archmap", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, path.parents[1]


def test_cli_and_graph_packages_import_without_cycles():
    import networkx as nx

    archmap, root = _archmap()
    g = archmap.import_graph(root, top_level_only=False)  # imports inside functions count too
    ours = g.subgraph([m for m in g if m.startswith(("builder.cli", "builder.graph"))])
    assert nx.is_directed_acyclic_graph(ours), list(nx.simple_cycles(ours))[:3]
    for sub in ("builder.cli.train", "builder.cli.search", "builder.cli.common"):
        assert "builder.cli.main" not in g.successors(sub)
    layers = [m for m in g if m.startswith("builder.graph.layers.")]
    assert layers and not any(m in g.successors(layer) for layer in layers
                              for m in ("builder.graph.registry", "builder.graph.layers"))


@pytest.mark.parametrize(("exc", "code"), [("format", 2), ("graph", 1), ("layerlab", 2), ("interrupt", 130),
                                          ("pipe", 0), ("none", 0)])
def test_dispatch_maps_errors_to_exit_codes(exc, code, capsys):
    import argparse

    from builder.cli.common import dispatch
    from builder.errors import GraphError, LayerLabError, Problem, ProjectFormatError

    raised = {"format": ProjectFormatError("bad\nfile"), "graph": GraphError([Problem("shape", "too small", node="fc")]),
              "layerlab": LayerLabError("no such run"), "interrupt": KeyboardInterrupt(), "pipe": BrokenPipeError(),
              "none": None}[exc]

    def cmd(args):
        if raised is not None:
            raise raised
        return 0

    parser = argparse.ArgumentParser()
    parser.add_subparsers().add_parser("go").set_defaults(func=cmd)
    assert dispatch(parser, ["go"]) == code
    out, err = capsys.readouterr()
    if exc == "graph":
        assert "fc" in out and "too small" in out and not err
    elif exc in ("format", "layerlab"):
        assert err.startswith("error: ") and err.count("\n") == 1  # one escaped line
    assert dispatch(parser, []) == 2  # no command: the help


def test_load_project_arg_takes_a_file_or_a_template_name(tmp_path, example_project):
    from builder.cli.common import load_project_arg
    from builder.errors import ProjectFormatError
    from builder.graph.templates import load_template

    assert load_project_arg("mlp") == load_template("mlp")
    f = tmp_path / "p.json"
    f.write_text(json.dumps(example_project), encoding="utf-8")
    assert len(load_project_arg(str(f)).graph.nodes) == len(example_project["graph"]["nodes"])
    with pytest.raises(ProjectFormatError):
        load_project_arg(str(tmp_path / "mlp.json"))  # a missing .json file is no template name


def test_every_cli_line_goes_through_say():
    """A command's output is escaped for the terminal in one place (builder.cli.common.say, say_block, say_json):
    a bare print with a name, a message or a file's text in it forged lines or sent escape sequences (a failed
    run's message and a study's trial lines did)."""
    import ast
    from pathlib import Path

    import builder.cli

    homes = {"say", "say_block", "say_json", "say_progress", "emit_text"}  # emit_text: code, escaped for Python
    bad = []
    for path in sorted(Path(builder.cli.__file__).parent.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        allowed = {id(n) for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef) and fn.name in homes
                   for n in ast.walk(fn)}
        bad += [f"{path.name}:{n.lineno}" for n in ast.walk(tree) if isinstance(n, ast.Call)
                and isinstance(n.func, ast.Name) and n.func.id == "print" and id(n) not in allowed]
        bad += [f"{path.name}:{n.lineno} {ast.unparse(n.func)}" for n in ast.walk(tree) if isinstance(n, ast.Call)
                and isinstance(n.func, ast.Attribute) and n.func.attr in ("write", "writelines")
                and id(n) not in allowed]  # any stream: the training progress wrote a failed run's message raw
    assert not bad, ("print through builder.cli.common.say (or say_block, say_json, say_progress, emit_text):\n"
                     + "\n".join(bad))


def test_a_failed_runs_message_in_the_progress_lines_is_escaped():
    """The training progress wrote ``failed: <message>`` to the terminal as it was: a node id holding an OSC
    sequence retitled the terminal window and cleared the screen (`layerlab train` of a project whose NaN node
    was named so)."""
    import io

    from builder.cli.train import Progress

    evil = "\x1b]0;PWNED\x07\x1b[2J\x1b[31mEVIL"
    for tty in (False, True):
        out = io.StringIO()
        bar = Progress(epochs=2, stream=out)
        bar.tty = tty
        bar({"type": "status", "status": "failed", "message": f"node {evil} gives NaN/Inf"})
        text = out.getvalue()
        assert "\x07" not in text and "\x1b]" not in text and "\x1b[2J" not in text
        assert "node \\x1b]0;PWNED\\x07\\x1b[2J\\x1b[31mEVIL gives NaN/Inf" in text
        assert text.startswith("\r\x1b[K" if tty else "failed: ") and text.endswith("\n")
