"""A hostile ``config.json`` in a Hugging Face model folder (the CLI's ``layerlab import FOLDER``, the model
library): the size budget is checked on the sizes ``transformers`` will build, aliases included (GPT-2 reads
``hidden_size`` as ``n_embd``), and a value of the wrong type is one ModelImportError line that quotes nothing of
the file, never Python's own ValueError or TypeError. Only ``config.json`` is read here (nothing heavy)."""

from __future__ import annotations

import json

import pytest

from builder.interchange.errors import ModelImportError
from builder.interchange.hf_import import ALIASES, ARCHITECTURES, inspect_folder

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
