"""Fine-tuning modes (builder.training.finetune) on a Hugging Face model imported from a folder made with
save_pretrained: linear probe, LoRA and full fine-tuning trained a few steps from the imported run, what each
froze checked on the trained weights, the LoRA run exported merged (.py) and as a PEFT adapter, and reloaded."""

from __future__ import annotations

import pytest
import torch

from builder.data.access import Actor
from builder.errors import TrainingError
from builder.graph.compile import compile_graph
from builder.graph.lora import merge_lora, peft_adapter
from builder.graph.project import Edge, Node, Project
from builder.interchange.hf_import import import_hf_folder
from builder.interchange.importer import register_import
from builder.runs.pipeline import run_training
from builder.runs.store import RunStore
from builder.training.finetune import finetune_freeze
from builder.training.weights import read_weights
from tests.interchange.hf_models import SEQ, make_folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft")
    folder = make_folder("bert", root / "bert", tokenizer=False)
    res = import_hf_folder(folder, seq_len=SEQ)
    store = RunStore(root / "ws", actor=Actor.local())
    rid = register_import(store, res)
    g = res.project.graph
    last = g.nodes[-1].id
    graph = g.model_copy(update={
        "nodes": [*g.nodes, Node(id="first", type="Select", params={"dim": 1, "index": 0}),
                  Node(id="head", type="Linear", params={"out_features": 2})],
        "edges": [*g.edges, Edge(source=last, target="first"), Edge(source="first", target="head")]})
    project = Project(name="probe", graph=graph)
    runs = {}
    for mode in ("linear_probe", "lora", "full"):
        out = run_training(project, "sequence", {"epochs": 1, "batch_size": 32, "init_from": rid, "finetune": mode,
                                                 "early_stopping": None, "lr": 1e-2},
                           store, dataset_options={"n_samples": 96, "length": SEQ}, name=mode)
        assert out.status == "finished", out.message
        runs[mode] = out.run_id
    return store, res, rid, runs


def _weights(store, rid):
    w, md = read_weights(store.weights_path(rid))
    return w


def test_each_mode_trains_only_what_it_says(setup):
    store, res, _, runs = setup
    base = res.weights
    q = "encoder_layer_0_attention_self_query"
    probe, lora, full = (_weights(store, runs[m]) for m in ("linear_probe", "lora", "full"))
    assert torch.equal(probe[f"{q}.weight"], base[f"{q}.weight"])  # backbone frozen
    assert torch.equal(lora[f"{q}.base_layer.weight"], base[f"{q}.weight"])  # base frozen, adapter trained
    assert lora[f"{q}.lora_B.weight"].abs().sum() > 0
    assert torch.equal(lora["embeddings_word_embeddings.weight"], base["embeddings_word_embeddings.weight"])
    assert not torch.equal(full[f"{q}.weight"], base[f"{q}.weight"])  # everything trains
    lora_cfg = store.get(runs["lora"])["config"]
    assert lora_cfg["finetune"] == "lora" and "head" not in lora_cfg["freeze"] and q not in lora_cfg["freeze"]


def test_lora_run_exports_merged_and_as_adapter(setup, tmp_path):
    from builder.graph.compile import module_names
    from builder.graph.project import load_project
    from builder.interchange.python_export import export_python

    store, _, _, runs = setup
    run = store.get(runs["lora"])
    graph = load_project(run["project"]).graph
    assert any(n.type == "LoRA" for n in graph.nodes)
    weights = _weights(store, runs["lora"])
    names = module_names(graph)
    model = compile_graph(graph)
    model.load_state_dict(weights)
    merged, plain_w = merge_lora(graph, weights, names)
    space: dict = {}
    exec(compile(export_python(merged), "merged.py", "exec"), space)  # noqa: S102  our own generated code
    py = space["Model"]().eval()
    py.load_state_dict(plain_w)
    x = torch.randint(0, 12, (4, SEQ))
    with torch.no_grad():
        assert torch.allclose(py(x), model.eval()(x), atol=1e-5)
    files = peft_adapter(graph, weights, names)
    from safetensors.torch import load

    adapter = load(files["adapter_model.safetensors"])
    assert set(adapter) == {f"base_model.model.encoder.layer.0.attention.self.{p}.{part}.weight"
                            for p in ("query", "key", "value") for part in ("lora_A", "lora_B")}


def test_unknown_mode_is_refused():
    with pytest.raises(TrainingError, match="fine-tuning mode is one of full, linear_probe, lora"):
        finetune_freeze({"nodes": [], "edges": []}, "adapters")


def test_lora_checkpoint_keeps_what_trains_and_refers_to_the_base(setup):
    """A LoRA run's checkpoint holds the adapters and the head, and the frozen base only as a SHA-256: it is a
    fraction of the full run's; loading it needs the very base (a changed base is refused)."""
    from builder.graph.project import load_project
    from builder.runs.pipeline import build_model, load_run
    from builder.training.checkpoint import checkpoint_weights, read_checkpoint, tensors_sha256

    store, res, rid, runs = setup
    lora_ckpt, full_ckpt = (store.folder(runs[m]).checkpoint for m in ("lora", "full"))
    tensors, meta = read_checkpoint(lora_ckpt)
    model_keys = {k[6:] for k in tensors if k.startswith("model.")}
    assert all(".lora_" in k or k.startswith("head.") or "running" in k for k in model_keys), sorted(model_keys)[:5]
    assert "encoder_layer_0_attention_self_query.base_layer.weight" in meta["base"]["keys"]
    full_tensors, _ = read_checkpoint(full_ckpt)

    def model_bytes(ts):
        return sum(v.numel() * v.element_size() for k, v in ts.items() if k.startswith("model."))

    assert model_bytes(tensors) < model_bytes(full_tensors) / 4
    assert lora_ckpt.stat().st_size < full_ckpt.stat().st_size / 2
    model, _ = load_run(store, runs["lora"], weights="checkpoint")  # the base comes from the imported run
    final = _weights(store, runs["lora"])
    assert all(torch.equal(model.state_dict()[k], final[k]) for k in final if ".base_layer." in k)
    assert tensors_sha256({k: final[k] for k in meta["base"]["keys"]}) == meta["base"]["sha256"]
    stranger = build_model(load_project(store.get(runs["lora"])["project"]).graph, seed=5)  # another base
    with pytest.raises(TrainingError, match="refers to frozen base weights by content"):
        checkpoint_weights(tensors, meta, stranger)


def test_export_of_an_unfinished_run_fills_in_the_base(setup, tmp_path):
    """The CLI's export of a run without final weights reads its slim checkpoint with the base filled in."""
    from builder.cli.train import _weights_from_checkpoint

    store, res, _, runs = setup
    out = _weights_from_checkpoint(store, runs["lora"], tmp_path / "w.safetensors")
    got, _ = read_weights(out)
    q = "encoder_layer_0_attention_self_query"
    assert torch.equal(got[f"{q}.base_layer.weight"], res.weights[f"{q}.weight"])
    assert f"{q}.lora_A.weight" in got and "head.weight" in got


def test_each_mode_records_its_peak_memory(setup):
    """Runs compares the modes' peak memory: each run's final epoch carries it (peak RSS here, on a CPU)."""
    store, _, _, runs = setup
    peaks = {m: store.get(r)["final_metrics"].get("peak_memory") for m, r in runs.items()}
    assert all(isinstance(p, int) and p > 2**20 for p in peaks.values()), peaks


def test_a_model_folder_tokenizer_tokenizes_the_csv_and_is_saved_with_the_run(tmp_path):
    """A run starting from a model imported with its tokenizer.json tokenizes the user's CSV texts with that
    tokenizer (not one learned on the texts), saves it with the run, and reloads the data with it; its vocabulary
    holds a "/" (as real ones do), which is no path in content."""
    import hashlib
    import json

    from builder.data.sources import LocalFile
    from builder.data.text import load_tokenizer
    from builder.runs.pipeline import load_run_dataset

    folder = make_folder("bert", tmp_path / "bert", tokenizer=True)
    tok_json = json.loads((folder / "tokenizer.json").read_text())
    tok_json["model"]["vocab"]["and/or"] = len(tok_json["model"]["vocab"])  # real vocabularies hold '/' (no path)
    (folder / "tokenizer.json").write_text(json.dumps(tok_json))
    res = import_hf_folder(folder, seq_len=SEQ)
    store = RunStore(tmp_path / "ws", actor=Actor.local())
    rid = register_import(store, res)
    (store.folder(rid).tokenizer).write_bytes((folder / "tokenizer.json").read_bytes())  # as the worker keeps it
    g = res.project.graph
    graph = g.model_copy(update={
        "nodes": [*g.nodes, Node(id="first", type="Select", params={"dim": 1, "index": 0}),
                  Node(id="head", type="Linear", params={"out_features": 2})],
        "edges": [*g.edges, Edge(source=g.nodes[-1].id, target="first"), Edge(source="first", target="head")]})
    words = ["good", "bad", "great", "awful", "movie", "film", "plot", "zebra"]
    rows = [f"the {words[i % 8]} {words[(i * 3) % 8]} was very fine,{i % 2}" for i in range(40)]
    csv = tmp_path / "sentences.csv"
    csv.write_text("text,label\n" + "\n".join(rows) + "\n")
    out = run_training(Project(name="tok", graph=graph), "text",
                       {"epochs": 1, "batch_size": 16, "init_from": rid, "finetune": "linear_probe",
                        "early_stopping": None},
                       store, dataset_options={"path": LocalFile(csv), "target": "label", "max_length": SEQ})
    assert out.status == "finished", out.message
    run = store.get(out.run_id)
    text = (folder / "tokenizer.json").read_text()
    assert run["dataset_options"]["tokenizer"] == "pretrained"
    assert run["dataset_options"]["tokenizer_sha256"] == hashlib.sha256(text.encode()).hexdigest()
    saved = store.folder(out.run_id).tokenizer.read_text()
    assert json.loads(saved) == json.loads(text)
    ds = load_run_dataset(store, run)
    tok = load_tokenizer(text)
    first = ds.train.X[0].tolist()
    assert max(first) < tok.get_vocab_size() and tok.token_to_id("[UNK]") in ds.train.X  # "zebra": not learned
    assert ds.info.vocab[:2] == ["[PAD]", "[UNK]"]


@pytest.mark.parametrize("mode", ["linear_probe", "lora"])
def test_a_frozen_layer_the_source_run_cannot_fill_is_refused_not_kept_random(setup, mode):
    """A usability review: the Data page's fix set the Input's vocab_size to the learned tokenizer's 63 (the
    model's is 100), init_from skipped the word embedding without a word, and LoRA froze that random table
    (test accuracy 0.53). A frozen layer that is not loaded is refused, naming it and why; full fine-tuning of
    the same graph trains it."""
    store, res, rid, _ = setup
    g = res.project.graph
    last = g.nodes[-1].id
    nodes = [n.model_copy(update={"params": {**n.params, "vocab_size": 63}}) if n.type == "Input" else n
             for n in g.nodes]
    graph = g.model_copy(update={
        "nodes": [*nodes, Node(id="first", type="Select", params={"dim": 1, "index": 0}),
                  Node(id="head", type="Linear", params={"out_features": 2})],
        "edges": [*g.edges, Edge(source=last, target="first"), Edge(source="first", target="head")]})
    cfg = {"epochs": 1, "batch_size": 32, "init_from": rid, "early_stopping": None}
    opts = {"n_samples": 64, "length": SEQ}
    with pytest.raises(TrainingError, match=r"frozen layer\(s\) would keep random weights, not loaded from run .*"
                                            r"shapes differ \(weight\).*Fix: give them the sizes"):
        run_training(Project(name="p", graph=graph), "sequence", {**cfg, "finetune": mode}, store,
                     dataset_options=opts)
    out = run_training(Project(name="p", graph=graph), "sequence", {**cfg, "finetune": "full"}, store,
                       dataset_options=opts)
    assert out.status == "finished", out.message
