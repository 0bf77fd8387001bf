"""A hostile ``config.json`` in a Hugging Face model folder (the CLI's ``layerlab import FOLDER``, the model
library): the size budget is checked on the sizes ``transformers`` will build, aliases included (GPT-2 reads
``hidden_size`` as ``n_embd``), and a value of the wrong type is one ModelImportError line that quotes nothing of
the file, never Python's own ValueError or TypeError. Only ``config.json`` is read here (nothing heavy)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder.interchange.errors import ModelImportError
from builder.interchange.hf_import import ALIASES, ARCHITECTURES, config_params, inspect_folder
from tests.fuzz_budget import budget

SECRET = "the-secret-of-the-file"
TINY = {"gpt2": {"vocab_size": 10, "n_embd": 4, "n_layer": 1, "n_positions": 8, "n_head": 2},
        "distilbert": {"vocab_size": 10, "dim": 4, "n_layers": 1, "hidden_dim": 8, "max_position_embeddings": 8,
                       "n_heads": 2}}


def _folder(tmp_path, cfg: dict):
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "model.safetensors").write_bytes(b"")
    return tmp_path


@pytest.mark.parametrize(("arch", "alias"), [(a, k) for a in TINY for k in ALIASES[a]
                                               if "heads" not in k])
def test_an_alias_transformers_reads_counts_against_the_budget(tmp_path, arch, alias):
    cfg = {"model_type": arch, **TINY[arch]}
    small = inspect_folder(_folder(tmp_path, cfg), budget=10**6).params
    cfg[alias] = 4096  # transformers builds this size, whatever the canonical key says
    with pytest.raises(ModelImportError, match="too big"):
        inspect_folder(_folder(tmp_path, cfg), budget=small)  # any growth is over it


@pytest.mark.parametrize("value", ["x" + SECRET, [1], None, 1e400, -3, 0, True, 2.5])
@pytest.mark.parametrize("arch", sorted(TINY))
def test_a_position_table_size_of_the_wrong_type_is_one_line(tmp_path, arch, value):
    cfg = {"model_type": arch, **TINY[arch], "max_position_embeddings": value}
    text = json.dumps(cfg).replace("Infinity", "1e400")
    (tmp_path / "config.json").write_text(text)
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelImportError) as e:
        inspect_folder(tmp_path, seq_len=4)
    msg = str(e.value)
    assert "\n" not in msg and SECRET not in msg and ("max_position_embeddings" in msg or "n_positions" in msg)


def test_the_alias_table_is_transformers_own():
    import transformers

    for arch, (cls, _, _) in ARCHITECTURES.items():
        config = getattr(transformers, cls.replace("Model", "Config"))
        assert ALIASES.get(arch, {}) == {k: v for k, v in config.attribute_map.items()
                                        if v in ARCHITECTURES[arch][2]}, arch


def test_a_config_nested_deeper_than_json_reads_is_one_line(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "gpt2", "x": ' + "[" * 200_000 + "]" * 200_000 + "}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelImportError, match="unreadable config.json"):
        inspect_folder(tmp_path)


SMALL = {"bert": {"vocab_size": 50, "hidden_size": 32, "num_hidden_layers": 2, "intermediate_size": 16,
                  "max_position_embeddings": 16, "num_attention_heads": 2},
         "gpt2": {"vocab_size": 50, "n_embd": 32, "n_layer": 2, "n_positions": 16, "n_head": 2, "n_inner": 16},
         "distilbert": {"vocab_size": 50, "dim": 32, "n_layers": 2, "hidden_dim": 16, "max_position_embeddings": 16,
                        "n_heads": 2},
         "vit": {"hidden_size": 32, "num_hidden_layers": 2, "intermediate_size": 16, "image_size": 16,
                 "patch_size": 4, "num_channels": 3, "num_attention_heads": 2}}
SWITCHES = [{}, {"is_decoder": True}, {"add_cross_attention": True}, {"is_decoder": True, "add_cross_attention": True},
            {"position_embedding_type": "relative_key"}, {"sinusoidal_pos_embds": True}]


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("switch", SWITCHES, ids=lambda s: "-".join(s) or "base")
@pytest.mark.parametrize("arch", sorted(SMALL))
def test_a_config_is_accepted_only_with_the_parameters_transformers_builds_for_it(tmp_path, arch, switch):
    """The budget counts the base model the import maps: a switch that adds modules (BERT's and GPT-2's
    cross-attention: 1.33x and 1.25x the counted parameters) or changes them is refused, never counted short."""
    import torch
    import transformers

    cfg = {**SMALL[arch], **switch}
    try:
        with torch.device("meta"):
            model = getattr(transformers, ARCHITECTURES[arch][0])(transformers.AutoConfig.for_model(arch, **cfg),
                                                                  **({"add_pooling_layer": False}
                                                                     if arch in ("bert", "vit") else {}))
        real = sum(p.numel() for p in model.parameters())
    except ValueError:  # transformers builds no model of it (BERT's cross-attention outside a decoder)
        real = None
    try:
        counted = inspect_folder(_folder(tmp_path, {"model_type": arch, **cfg}), budget=10**9).params
    except ModelImportError as e:
        assert "must be" in str(e) and "(the import builds the base model only)" in str(e)
        assert switch, "the base config is refused"
    else:
        assert counted == real, (arch, switch)


@pytest.mark.parametrize(("heads", "why"), [("two", "must be a positive integer"), (3, "must be a multiple of"),
                                            (0, "must be a positive integer"), (True, "must be a positive integer")])
@pytest.mark.parametrize("arch", sorted(SMALL))
def test_a_head_count_of_the_wrong_kind_is_one_line_and_the_library_lists_the_rest(tmp_path, arch, heads, why,
                                                                                    monkeypatch):
    """``"num_attention_heads": "two"`` went unread until the library computed its memory, where int() raised
    ValueError: one folder stopped the model library's listing for everyone."""
    from builder.interchange.hf_import import HEADS
    from builder.interchange.hf_library import LIBRARY_ENV, library_entries

    cfg = {"model_type": arch, **SMALL[arch], HEADS[arch][1]: heads}
    with pytest.raises(ModelImportError, match=why):
        inspect_folder(_folder(tmp_path, cfg))
    lib, ws = tmp_path / "lib", tmp_path / "ws"
    for name, c in (("bad", cfg), ("good", {"model_type": arch, **SMALL[arch]})):
        (lib / name).mkdir(parents=True)
        _folder(lib / name, c)
    ws.mkdir()
    monkeypatch.setenv(LIBRARY_ENV, str(lib))
    entries = {e["name"]: e for e in library_entries(ws)}
    assert why in entries["bad"]["problem"] and entries["good"]["problem"] is None and entries["good"]["memory"]


def test_a_long_sequence_is_refused_before_the_causal_tables_are_built(tmp_path):
    """GPT-2 imports with one (seq_len, seq_len) causal table per block: 12 blocks at 65,536 tokens hold 51.5e9
    values (~200 GB; 13 tables while the last is built) beside 535,568 parameters. The config check counted 64
    tokens and let it through."""
    cfg = {"model_type": "gpt2", "vocab_size": 100, "n_embd": 8, "n_layer": 12, "n_positions": 65536, "n_head": 2}
    folder = _folder(tmp_path, cfg)
    assert inspect_folder(folder, seq_len=64).seq_len == 64
    with pytest.raises(ModelImportError, match=r"too big: 55,835,110,416 values \(535,568 parameters and .* causal mask tables at 65,536 tokens\)"):
        inspect_folder(folder, seq_len=65536)


@settings(max_examples=budget(25), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layers=st.integers(1, 3), positions=st.integers(1, 300), data=st.data())
def test_gpt2_counts_what_its_import_holds_at_the_chosen_length(tmp_path, layers, positions, data):
    """The values of the module the import exports (built on the meta device: nothing allocated), at any sequence
    length the folder allows, are the counted parameters and fixed tables (less the one table's build temporary)."""
    import torch
    import transformers

    from builder.interchange.hf_import import canonical_module

    seq = data.draw(st.integers(1, positions), label="seq_len")
    cfg = {"vocab_size": 50, "n_embd": 8, "n_layer": layers, "n_positions": positions, "n_head": 2}
    info = inspect_folder(_folder(tmp_path, {"model_type": "gpt2", **cfg}), budget=10**9, seq_len=seq)
    with torch.device("meta"):
        module = canonical_module(transformers.GPT2Model(transformers.GPT2Config(**cfg)), info)
    held = sum(t.numel() for t in (*module.parameters(), *module.buffers()))
    assert info.params + info.buffers - seq * seq == held
    macs = config_params("gpt2", cfg, seq)[1]
    assert macs == layers * seq * (12 * 64 + 2 * seq * 8) == info.macs  # 4h²+2h·4h per token, QKᵀ and AV
