"""Text uploads allocate what their limits imply: a corpus is encoded a piece at a time (refused at
MAX_TOKEN_CELLS as it is counted), a text only as far as its first max_length tokens, and a tokenizer learns from
a bounded sample of the training text (limits.MAX_TOKENIZER_TRAIN_CHARS)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import builder.data.limits as limits
from builder.data.splits import DatasetInfo
from builder.data.text import TokenizerOptions, corpus_dataset, encode, texts_dataset, train_tokenizer
from builder.errors import DatasetError

ROOT = Path(__file__).resolve().parents[2]


def _grew_mib(body: str) -> float:
    """MiB a fresh process's peak (VmHWM) grew while it ran ``body`` (torch, tokenizers and the module warm)."""
    code = textwrap.dedent("""
        import json, re
        import torch, pandas, tokenizers
        from builder.data.text import load_text, train_tokenizer, TokenizerOptions, encode
        train_tokenizer(["a b"], TokenizerOptions(vocab_size=10))
        def peak():
            return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
        before = peak()
    """) + textwrap.dedent(body) + "\nprint(json.dumps({'grew_mib': (peak() - before) / 1024}))\n"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.splitlines()[-1])["grew_mib"]


@pytest.mark.parametrize("line", ["a\n", "a "])
def test_a_4_mib_corpus_grows_the_process_by_far_less_than_its_encodings(tmp_path, line):
    """4 MiB of "a\\n" lines grew the server's process by 1.78 GB (every line's encoding held at once)."""
    path = tmp_path / "c.txt"
    grew = _grew_mib(f"""
        open({str(path)!r}, "w").write({line!r} * 2 * 2**20)
        ds = load_text({str(path)!r}, max_length=64, vocab_size=100)
        assert ds.train.X.shape == (22937, 64), ds.train.X.shape
    """)
    assert grew < 250, grew  # one line: 618 MiB before, ~135 after; lines: 1,560 before, ~70 after


def test_a_4_mib_csv_of_40_texts_encodes_only_their_first_tokens(tmp_path):
    """40 texts of 100 KiB each grew it by 560 MB, though 64 tokens of each are kept."""
    path = tmp_path / "t.csv"
    grew = _grew_mib(f"""
        row = "a " * (2**20 // 20)
        with open({str(path)!r}, "w") as f:
            f.write("text,label\\n" + "".join(f"{{row}},{{i % 2}}\\n" for i in range(40)))
        del row
        ds = load_text({str(path)!r}, target="label", max_length=64, vocab_size=100)
        assert ds.train.X.shape == (28, 64) and bool((ds.train.X != 0).all())
    """)
    assert grew < 150, grew


def test_a_corpus_over_the_token_limit_is_refused_before_the_rest_is_encoded(monkeypatch):
    monkeypatch.setattr(limits, "MAX_TOKEN_CELLS", 1000)
    info = DatasetInfo(name="text:c.txt", task="next_token", modality="tokens", input_shape=(8,))
    with pytest.raises(DatasetError, match=r"at most 1,000 token ids .*received: over [\d,]+ in its first "
                                           r"262,140 of 960,000 characters\. Fix: a shorter corpus"):
        corpus_dataset("a b c\n" * 200_000, info, TokenizerOptions(max_length=8), seed=0, val_fraction=0.1,
                       test_fraction=0.1)


def test_cut_texts_encode_as_in_full():
    tok = train_tokenizer(["good film", "bad film", "a long word"], TokenizerOptions(vocab_size=50))
    texts = ["good  film " * 3000, "a" * 9000 + " film", " " * 20_000 + "bad film", "good film", ""]
    full = [tok.encode(t).ids[:16] for t in texts]
    want = np.array([ids + [0] * (16 - len(ids)) for ids in full])
    assert np.array_equal(encode(tok, texts, 16), want)


def test_the_tokenizer_learns_from_a_bounded_sample_and_says_so(monkeypatch):
    monkeypatch.setattr(limits, "MAX_TOKENIZER_TRAIN_CHARS", 2000)
    words = [f"w{i}" for i in range(3000)]
    texts = [" ".join(words[i:i + 10]) for i in range(0, 3000, 10)]
    y = np.arange(len(texts)) % 2
    info = DatasetInfo(name="t", task="binary", modality="tokens", input_shape=(8,), class_names=["a", "b"])
    opts = TokenizerOptions(vocab_size=5000, max_length=8)
    ds = texts_dataset(texts, y, info, opts, task=None, seed=0, val_fraction=0.1, test_fraction=0.1)
    assert any("MAX_TOKENIZER_TRAIN_CHARS" in n for n in ds.info.notes), ds.info.notes
    assert len(ds.info.vocab) < 2 + 2000 // 3  # words of 2,000 characters at most, not all 2,400 training words
    monkeypatch.setattr(limits, "MAX_TOKENIZER_TRAIN_CHARS", 10**9)
    ds2 = texts_dataset(texts, y, DatasetInfo(name="t", task="binary", modality="tokens", input_shape=(8,),
                                              class_names=["a", "b"]), opts, task=None, seed=0, val_fraction=0.1,
                        test_fraction=0.1)
    assert not any("MAX_TOKENIZER_TRAIN_CHARS" in n for n in ds2.info.notes) and len(ds2.info.vocab) > 2000


def test_a_long_word_past_the_cut_is_not_tokenized_by_its_prefix():
    """Review of the bounded encode: a text cut inside a word of 6,000 letters (no whitespace near the cut) gave
    its prefix's WordPiece pieces where the whole word is one [UNK]; a cut now leaves a long word out, and reads
    further when that gave too few tokens."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    from builder.data import text as T

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "hello": 4, "a": 5, "##a": 6, "aa": 7, "##aa": 8,
             "world": 9}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2),
                                                                                                 ("[SEP]", 3)])
    L = 16
    bound = min(L * (max(len(t) for t in tok.get_vocab()) + 1) * 2 + T._CUT_SLACK, T._BATCH_CHARS)
    text = "hello " * 12 + " " * (bound - 112) + "a" * 6000 + " world"
    for special in (False, True):
        whole = tok.encode(text, add_special_tokens=special).ids[:L]
        assert T.encode(tok, [text], L, special=special)[0].tolist() == whole + [0] * (L - len(whole))
