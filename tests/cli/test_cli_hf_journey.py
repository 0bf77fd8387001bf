"""The done-when journey of issue 32 on the command line (the canvas steps have their browser/AppTest tests): a
model library holding a tiny BERT made with save_pretrained, listed with its size; imported by name; a
classification head attached; fine-tuned with LoRA on an uploaded CSV of sentences (tokenized by the model's own
tokenizer) and compared with a linear probe (trainable parameters, peak memory, time, accuracy); the LoRA run
exported merged as plain .py and ONNX that compute what the run's model computes."""

from __future__ import annotations

import json

import numpy as np
import torch

from builder.cli.main import main
from builder.data.access import Actor
from builder.graph.project import Edge, Node, load_project
from builder.interchange.hf_library import LIBRARY_ENV
from builder.runs.pipeline import load_run
from builder.runs.store import RunStore
from builder.runs.summary import duration_s
from tests.interchange.hf_models import SEQ, make_folder


def _sentences(path) -> str:
    good, bad = ["good", "great", "fine"], ["bad", "awful", "not"]
    rows = [f"the film was {(good if i % 2 else bad)[i % 3]} very {(good if i % 2 else bad)[(i + 1) % 3]},"
            f"{'pos' if i % 2 else 'neg'}" for i in range(48)]
    path.write_text("text,label\n" + "\n".join(rows) + "\n")
    return str(path)


def test_library_model_to_lora_and_linear_probe_runs_to_merged_exports(tmp_path, monkeypatch, capsys):
    ws = str(tmp_path / "ws")
    make_folder("bert", tmp_path / "library" / "tiny-bert", tokenizer=True)
    monkeypatch.setenv(LIBRARY_ENV, str(tmp_path / "library"))
    assert main(["library", "--workspace", ws]) == 0
    listed = capsys.readouterr().out
    assert "tiny-bert" in listed and "4,400 params" in listed and "training" in listed  # size before placing

    proj = tmp_path / "bert.json"
    assert main(["import", "library:tiny-bert", "--seq-len", str(SEQ), "-o", str(proj), "--register",
                 "--workspace", ws]) == 0
    store = RunStore(ws, actor=Actor.local())
    (base,) = [r["id"] for r in store.list_runs()]
    p = load_project(proj)
    g = p.graph
    g = g.model_copy(update={  # the classification head on the first token
        "nodes": [*g.nodes, Node(id="first", type="Select", params={"dim": 1, "index": 0}),
                  Node(id="head", type="Linear", params={"out_features": 2})],
        "edges": [*g.edges, Edge(source=g.nodes[-1].id, target="first"), Edge(source="first", target="head")]})
    with_head = tmp_path / "classifier.json"
    with_head.write_text(p.model_copy(update={"graph": g}).to_json())
    csv = _sentences(tmp_path / "sentences.csv")
    for mode in ("lora", "linear_probe"):
        assert main(["train", str(with_head), "--dataset", "text", "--data-path", csv, "--target", "label",
                     "--dataset-option", f"max_length={SEQ}", "--init-from", base, "--finetune", mode,
                     "--epochs", "1", "--batch-size", "16", "--name", mode, "--workspace", ws]) == 0
    runs = {r["name"]: store.get(r["id"]) for r in store.list_runs() if r["id"] != base}
    lora, probe = runs["lora"], runs["linear_probe"]
    for r in (lora, probe):  # what Runs compares
        assert r["status"] == "finished" and r["dataset_options"]["tokenizer"] == "pretrained"
        assert r["final_metrics"]["peak_memory"] > 0 and duration_s(r) is not None
        assert "accuracy" in r["test_metrics"]
    assert lora["environment"]["trainable"] > probe["environment"]["trainable"] > 0

    model, ds = load_run(store, lora["id"])
    x = ds.test.X[:4]
    with torch.no_grad():
        want = model(x)
    out_py = tmp_path / "merged.py"
    assert main(["export", "--run", lora["id"], "-o", str(out_py), "--workspace", ws]) == 0
    assert "LoRA adapters merged" in capsys.readouterr().out
    source = out_py.read_text()
    assert "lora_A" not in source and "ModuleDict" not in source
    space: dict = {}
    exec(compile(source, "merged.py", "exec"), space)  # noqa: S102  our own generated code
    from safetensors.torch import load_file

    plain = space["Model"]().eval()
    plain.load_state_dict(load_file(str(out_py.with_suffix(".safetensors"))))
    with torch.no_grad():
        assert torch.allclose(plain(x), want, atol=1e-5)

    out_onnx = tmp_path / "merged.onnx"
    assert main(["export", "--run", lora["id"], "-o", str(out_onnx), "--workspace", ws]) == 0
    import onnx
    import onnxruntime as ort

    assert not [i.name for i in onnx.load(str(out_onnx)).graph.initializer if "lora" in i.name.lower()]
    sess = ort.InferenceSession(str(out_onnx), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    assert np.allclose(got, want.numpy(), atol=1e-4)
    assert json.loads((tmp_path / "merged.tokenizer.json").read_text())  # the model's tokenizer beside it
