import ast
import importlib.util
import subprocess
import sys

import pytest
import torch

from builder import compile_graph, example_inputs, export_python, load_template, load_weights, save_weights

TEMPLATES = ["mlp", "cnn", "resnet", "lstm", "transformer", "autoencoder"]


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
