"""Tiny random Hugging Face model folders, made with ``save_pretrained`` (hidden 16, one layer), for the tests of
the model-folder import, the model library and LoRA; each test writes its own into a temporary folder."""

from __future__ import annotations

from pathlib import Path

ARCHS = ("bert", "distilbert", "gpt2", "vit")
SEQ = 8  # tokens per sample of the text models


def make_folder(arch: str, folder: Path, *, layers: int = 1, hidden: int = 16, tokenizer: bool = True,
                seed: int = 0, positions: int = 32) -> Path:
    """Save a random ``arch`` model (and, for text models, a word-level ``tokenizer.json``) into ``folder``."""
    import torch
    import transformers as tf

    torch.manual_seed(seed)
    if arch == "bert":
        model = tf.BertModel(tf.BertConfig(vocab_size=100, hidden_size=hidden, num_hidden_layers=layers,
                                           num_attention_heads=2, intermediate_size=2 * hidden,
                                           max_position_embeddings=positions))
    elif arch == "distilbert":
        model = tf.DistilBertModel(tf.DistilBertConfig(vocab_size=100, dim=hidden, n_layers=layers, n_heads=2,
                                                       hidden_dim=2 * hidden, max_position_embeddings=positions))
    elif arch == "gpt2":
        model = tf.GPT2Model(tf.GPT2Config(vocab_size=100, n_embd=hidden, n_layer=layers, n_head=2, n_positions=positions,
                                           bos_token_id=0, eos_token_id=0))
    elif arch == "vit":
        model = tf.ViTModel(tf.ViTConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                                         intermediate_size=2 * hidden, image_size=16, patch_size=8, num_channels=3),
                            add_pooling_layer=False)
    else:
        raise ValueError(arch)
    folder = Path(folder)
    model.save_pretrained(folder, safe_serialization=True)
    if tokenizer and arch != "vit":
        from tokenizers import Tokenizer, models, pre_tokenizers

        vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(
            ["good", "bad", "great", "awful", "fine", "movie", "film", "plot", "not", "very", "the", "a", "was", "is"])}}
        tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        tok.save(str(folder / "tokenizer.json"))
    return folder
