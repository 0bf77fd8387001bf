import ast
import importlib.util
import subprocess
import sys

import pytest
import torch

from builder import compile_graph, example_inputs, export_python, load_template, load_weights, save_weights
from builder.graph.templates import OBJECTIVE_TEMPLATES, TEMPLATE_NAMES

# the gan and vae templates (a tuple of loss terms): tests/graph/test_objective_code.py; their networks on their own:
# tests/interchange/test_network_export.py
TEMPLATES = [n for n in TEMPLATE_NAMES if n not in OBJECTIVE_TEMPLATES]


def _load_module(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name", TEMPLATES)
def test_exported_file_matches_compiled_module(tmp_path, name):
    project = load_template(name)
    if name == "transformer":
        project.graph.node("pos").params["kind"] = "sinusoidal"
    src = export_python(project)
    tree = ast.parse(src)
    imports = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imports |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imports <= {"torch", "math"}, imports
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    assert len(classes) == 1 and {f.name for f in classes[0].body if isinstance(f, ast.FunctionDef)} == {"__init__", "forward"}
    assert "= None" not in src.split("def forward")[1]  # fx's deletions are cleaned up

    torch.manual_seed(0)
    compiled = compile_graph(project).eval()
    weights = tmp_path / "w.safetensors"
    save_weights(compiled, weights)
    path = tmp_path / f"exported_{name}.py"
    path.write_text(src)
    model = load_weights(_load_module(path).Model().eval(), weights)
    xs = example_inputs(compiled, batch_size=4)
    with torch.no_grad():
        torch.testing.assert_close(model(*xs), compiled(*xs), rtol=0, atol=0)
    # and the file runs on its own
    res = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_export_is_readable(example_project):
    src = export_python(example_project)
    assert "self.c1 = nn.Conv2d(1, 16, 3, padding=1)  # -> (B, 16, 8, 8)" in src
    assert "self.fc = nn.Linear(1024, 10)" in src
    assert "c1 = self.c1(x)" in src


# ------------------------------------------------------------------------------------ hostile names (issue 9)
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from builder import load_project  # noqa: E402
from builder.errors import LayerLabError, ProjectFormatError  # noqa: E402
from builder.escape import visible  # noqa: E402
from builder.interchange.python_export import failed_export_source  # noqa: E402
from tests.fuzz_budget import budget  # noqa: E402
from tests.fuzz_graphs import hostile_text  # noqa: E402


def _small_project(name: str, ids: list[str], labels: list[str], description: str = "") -> dict:
    a, b, c, d = ids
    nodes = [{"id": a, "type": "Input", "params": {"shape": [4]}, "label": labels[0]},
             {"id": b, "type": "Linear", "params": {"out_features": 4}, "label": labels[1]},
             {"id": c, "type": "ReLU", "label": labels[2]},
             {"id": d, "type": "Add", "label": labels[3]}]
    edges = [{"source": a, "target": b}, {"source": b, "target": c}, {"source": c, "target": d},
             {"source": a, "target": d}]
    return {"format": "layerlab", "version": 1, "name": name, "description": description,
            "graph": {"nodes": nodes, "edges": edges}}


def _run_exported(src: str, xs):
    code = compile(src, "<exported>", "exec")
    ns: dict = {"__name__": "exported"}
    exec(code, ns)
    return ns["Model"]().eval()


@settings(max_examples=budget(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=hostile_text(0, 40), ids=st.lists(hostile_text(1, 12), min_size=4, max_size=4, unique=True),
       labels=st.lists(hostile_text(0, 12), min_size=4, max_size=4), description=hostile_text(0, 40))
def test_export_compiles_and_matches_for_any_names(name, ids, labels, description):
    """Arbitrary Unicode names, labels and ids ('\"\"\"', \\N, \\U, backslashes, NUL, newlines, surrogates):
    the exported file always compiles, defines only the model, and computes what the compiled graph does."""
    try:
        project = load_project(_small_project(name, ids, labels, description))
    except ProjectFormatError:
        return  # e.g. lone surrogates, which pydantic refuses: a clean one-line error
    torch.manual_seed(0)
    compiled = compile_graph(project).eval()
    src = export_python(project)
    tree = ast.parse(src)
    kinds = [type(n).__name__ for n in tree.body]
    assert kinds == ["Expr", "Import", "ImportFrom", "ClassDef", "If"], kinds  # docstring, imports, class, main
    model = _run_exported(src, None)
    model.load_state_dict(compiled.state_dict())
    xs = example_inputs(compiled, batch_size=3)
    with torch.no_grad():
        torch.testing.assert_close(model(*xs), compiled(*xs), rtol=0, atol=0)


INJECTIONS = ['x"""\nimport os; os.system("echo pwned")\n"""', "C:\\Users\\Nobody\\Models", "\\N{BULLET} \\U0001F600",
              "trailing backslash\\", 'a""""""b', "\x00nul", "\u202e\u2066bidi", "# coding: latin-1\n"]


@pytest.mark.parametrize("name", INJECTIONS)
def test_project_name_cannot_break_or_inject_the_export(tmp_path, name, capsys):
    """Regression: the name was written raw into the docstring (SyntaxError, or code run on import)."""
    project = load_project(_small_project(name, ["x", "fc", "act", "sum"], ["", "", "", ""]))
    src = export_python(project)
    path = tmp_path / "model.py"
    path.write_text(src, encoding="utf-8")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert ast.get_docstring(tree).startswith(visible(name, 200).lstrip())  # shown escaped, inert
    exec(compile(src, str(path), "exec"), {"__name__": "__main__"})  # as `python model.py` runs it
    assert capsys.readouterr().out.strip() == "(2, 4)"  # nothing else ran


def test_injected_name_in_a_real_process(tmp_path):
    project = load_project(_small_project(INJECTIONS[0], ["x", "fc", "act", "sum"], ["", "", "", ""]))
    path = tmp_path / "model.py"
    path.write_text(export_python(project), encoding="utf-8")
    res = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "(2, 4)" and "pwned" not in res.stdout, res.stderr


@pytest.mark.parametrize("node_id", ["a\nimport os; os.system('echo pwned')", "# coding: rot13", "\x1b[2J", "\\N"])
def test_failed_export_file_is_inert(node_id, capsys):
    """A graph that cannot be exported yields a file of escaped comments that exits 1 with the reason."""
    project = load_project({"graph": {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [4]}},
                                                {"id": node_id, "type": "Linear", "params": {"out_features": 0}}],
                                      "edges": [{"source": "x", "target": node_id}]}})
    with pytest.raises(LayerLabError) as err:
        export_python(project)
    src = failed_export_source(err.value)
    assert [type(n).__name__ for n in ast.parse(src).body] == ["Import", "Expr"]
    with pytest.raises(SystemExit) as done:
        exec(compile(src, "failed.py", "exec"), {"__name__": "__main__"})
    assert "could not export" in str(done.value.code) and "out_features" in str(done.value.code)
    assert "pwned" not in capsys.readouterr().out


def test_export_refuses_a_bad_class_name(example_project):
    with pytest.raises(LayerLabError, match="identifier"):
        export_python(example_project, class_name="Model():\n    pass\nimport os\nclass X")


def test_the_py_export_builds_its_model_on_the_meta_device(monkeypatch):
    """The .py download (Build and Runs pages, in the server's process) reads only the generated code: the model
    it compiles for it allocates nothing (every parameter and buffer on the meta device)."""
    from builder.interchange import python_export

    built = []
    real = python_export.compile_graph

    def spy(*a, **k):
        model = real(*a, **k)
        built.append({t.device.type for t in [*model.parameters(), *model.buffers()]})
        return model

    monkeypatch.setattr(python_export, "compile_graph", spy)
    source = python_export.export_python(load_template("cnn"))
    assert "class Model(nn.Module)" in source and built == [{"meta"}]
