"""builder.data.text: tokenizers learned on the training split only, text uploads, corpora for next_token."""

from __future__ import annotations

import csv
import io
import zipfile

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import builder.data.limits as limits
from builder.data import DatasetSource, load_dataset
from builder.data.text import (
    PAD_ID,
    UNK_ID,
    TokenizerOptions,
    TokenSplit,
    decode,
    encode,
    load_text,
    load_tokenizer,
    padding_mask,
    train_tokenizer,
)
from builder.data.uploads import UploadFolder
from builder.errors import DatasetError
from tests.fuzz_budget import budget

_WORDS = ["good", "great", "fine", "bad", "awful", "dull", "film", "plot", "the", "was", "and"]


def _sentences(n: int = 120) -> list[tuple[str, str]]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        lab = i % 2
        w = ["bad", "awful", "dull"][i % 3] if lab == 0 else ["good", "great", "fine"][i % 3]
        out.append((f"the film was {w} and the plot {rng.choice(_WORDS)}", "pos" if lab else "neg"))
    return out


def _csv_bytes(rows: list[tuple[str, str]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["sentence", "label"])
    w.writerows(rows)
    return buf.getvalue().encode()


@pytest.fixture(scope="module")
def word_tok():
    return train_tokenizer([s for s, _ in _sentences()], TokenizerOptions(vocab_size=100))


@settings(max_examples=budget(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(_WORDS), min_size=0, max_size=12))
def test_word_tokens_round_trip_and_pad(word_tok, words):
    ids = encode(word_tok, [" ".join(words)], 8)
    assert ids.shape == (1, 8) and ids.dtype == np.int64
    kept = words[:8]
    assert decode(word_tok, ids[0]) == " ".join(kept)
    assert padding_mask(ids)[0].tolist() == [i >= len(kept) for i in range(8)]


@pytest.fixture(scope="module")
def bpe_tok():
    return train_tokenizer([s for s, _ in _sentences()], TokenizerOptions(kind="bpe", vocab_size=300,
                                                                           lowercase=False))


@settings(max_examples=budget(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=30))
@example("\U00010781")  # newer in Unicode than the tokenizer's tables
def test_byte_level_bpe_round_trips_any_text_without_unknowns(bpe_tok, text):
    ids = encode(bpe_tok, [text], 200)
    assert UNK_ID not in ids.tolist()[0]  # bytes cover everything
    # the text as the tokenizer's own NFKC reads it: Python's Unicode tables may be newer than the tokenizer's
    # ('𐞁', Unicode 14, is 'ː' to Python 3.11 and itself to tokenizers: an example Hypothesis found)
    assert decode(bpe_tok, ids[0]) == bpe_tok.normalizer.normalize_str(text)


def test_the_tokenizer_learns_from_the_training_split_only(tmp_path):
    rows = _sentences()
    rows[0] = ("zebra " * 5, "neg")  # a word in one row only
    p = tmp_path / "s.csv"
    p.write_bytes(_csv_bytes(rows))
    ds = load_text(p, "label", text_column="sentence", max_length=10, seed=0)
    tok = load_tokenizer(ds.info.tokenizer)
    ids = encode(tok, ["zebra"], 2)[0].tolist()
    in_train = any(decode(tok, r).startswith("zebra") for r in ds.train.X)
    assert (ids[0] != UNK_ID) == in_train  # a word of the val/test rows only is out of vocabulary
    assert ds.info.task == "binary" and ds.info.class_names == ["neg", "pos"]
    assert isinstance(ds.train, TokenSplit) and ds.train.padding_mask().dtype == torch.bool
    assert torch.equal(ds.train.padding_mask(), ds.train.X == PAD_ID)


def test_a_csv_upload_loads_through_the_source_and_its_options_are_checked(tmp_path):
    uploads = UploadFolder(tmp_path / "up")
    ref = uploads.save("reviews.csv", _csv_bytes(_sentences()))
    spec = {"kind": "text", "name": "reviews.csv", "file": ref, "task": None,
            "options": {"target": "label", "text_column": "sentence", "max_length": 12}}
    ds = load_dataset(spec, uploads=uploads)
    assert ds.info.options["upload"] == ref and ds.info.input_shape == (12,) and ds.info.modality == "tokens"
    assert DatasetSource.of(ds.info).to_spec()["options"]["text_column"] == "sentence"
    with pytest.raises(DatasetError) as e:
        load_dataset("text", uploads=uploads, upload=ref, target="label", vocab_size=1, max_length=0,
                     tokenizer="chars")
    assert all(w in str(e.value) for w in ("vocab_size", "max_length", "tokenizer"))  # every problem at once
    with pytest.raises(DatasetError, match="names a file on the server"):
        load_dataset("text", path="/etc/passwd")


def test_a_zip_of_txt_per_class_and_a_corpus(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i, (s, lab) in enumerate(_sentences(60)):
            z.writestr(f"reviews/{lab}/{i}.txt", s)
    ds = load_text(buf.getvalue(), name="r.zip", max_length=9)
    assert ds.info.class_names == ["neg", "pos"] and sum(ds.info.sizes.values()) == 60
    corpus = ("\n".join(s for s, _ in _sentences()) + "\n").encode()
    lm = load_text(corpus, name="c.txt", max_length=8)
    assert lm.info.task == "next_token" and lm.info.out_size == len(lm.info.vocab)
    for s in (lm.train, lm.val, lm.test):  # targets are the inputs shifted by one
        assert torch.equal(s.X[:, 1:], s.y[:, :-1])


def test_sizes_are_bounded_before_allocation(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_TOKEN_CELLS", 100)
    with pytest.raises(DatasetError, match="MAX_TOKEN_CELLS"):
        load_text(_csv_bytes(_sentences()), "label", text_column="sentence", name="s.csv", max_length=12)
    monkeypatch.setattr(limits, "MAX_TEXT_BYTES", 50)
    with pytest.raises(DatasetError, match="larger than the limit"):
        load_text(_csv_bytes(_sentences()), "label", name="s.csv")


def test_the_builtin_text_sets_are_listed_with_origin_and_licence():
    from builder.data import list_datasets

    by = {d["name"]: d for d in list_datasets()}
    assert by["text_sentiment"]["task"] == "binary" and by["text_corpus"]["task"] == "next_token"
    assert "PSF" in by["text_corpus"]["licence"] and "generated" in by["text_sentiment"]["origin"]
    assert all(d["origin"] and d["licence"] for d in by.values())  # every built-in names both


def test_builtin_sentiment_and_corpus_load_small_and_reload_the_same():
    ds = load_dataset("text_sentiment", n_samples=200, max_length=12, seed=1)
    assert ds.info.sizes == {"train": 140, "val": 30, "test": 30} and ds.info.tokenizer
    again = load_dataset(DatasetSource.of(ds.info))
    assert torch.equal(ds.test.X, again.test.X) and ds.info.vocab == again.info.vocab
    lm = load_dataset("text_corpus", vocab_size=300, max_length=16)
    assert lm.info.task == "next_token" and lm.train.X.shape[1] == 16 and int(lm.train.X.max()) < 300
    assert load_dataset("text_corpus", vocab_size=300, max_length=16).info.tokenizer == lm.info.tokenizer  # resumes
    with pytest.raises(DatasetError, match="next_token"):
        load_dataset("text_corpus", task="multiclass")


def test_the_data_page_preview_counts_lengths_and_unknown_words():
    from builder.data.text import text_preview

    rows = _sentences(100)
    ds = load_text(_csv_bytes(rows), "label", text_column="sentence", name="s.csv", max_length=6, seed=0)
    view = text_preview(ds, 3)
    assert len(view["samples"]) == 3 and all("<pad>" not in s["tokens"] for s in view["samples"])
    assert len(view["lengths"]) == len(ds.train) and max(view["lengths"]) <= 6
    assert view["cut"] == 1.0  # every sentence has more than 6 words
    held = torch.cat([ds.val.X, ds.test.X])
    assert view["oov_rate"] == pytest.approx(float((held == UNK_ID).sum()) / float((held != PAD_ID).sum()))


def test_a_pretrained_tokenizer_pads_with_id_0():
    """LayerLab pads with id 0: a pretrained tokenizer whose id 0 is a word (GPT-2's "!") is refused by name."""
    from tokenizers import Tokenizer, models

    from builder.data.text import pretrained_tokenizer

    ok = Tokenizer(models.WordLevel({"[PAD]": 0, "[UNK]": 1, "good": 2}, unk_token="[UNK]"))
    assert pretrained_tokenizer(ok.to_str()).token_to_id("good") == 2
    bad = Tokenizer(models.WordLevel({"!": 0, "[UNK]": 1}, unk_token="[UNK]"))
    with pytest.raises(DatasetError, match="received: id 0 = '!'. Fix: use tokenizer 'word' or 'bpe'"):
        pretrained_tokenizer(bad.to_str())


def test_a_pretrained_tokenizers_vocabulary_is_bounded(monkeypatch):
    """Each of a pretrained tokenizer's tokens is listed with its dataset: a 64 MiB tokenizer.json holds millions."""
    from tokenizers import Tokenizer, models

    from builder.data import limits
    from builder.data.text import pretrained_tokenizer

    monkeypatch.setattr(limits, "MAX_PRETRAINED_VOCAB", 100)
    words = {"[PAD]": 0, "[UNK]": 1, **{f"w{i}": i + 2 for i in range(99)}}
    with pytest.raises(DatasetError, match="at most 100 tokens; received: 101"):
        pretrained_tokenizer(Tokenizer(models.WordLevel(words, unk_token="[UNK]")).to_str())
    del words["w98"]
    assert pretrained_tokenizer(Tokenizer(models.WordLevel(words, unk_token="[UNK]")).to_str()).get_vocab_size() == 100


def _hostile_tokenizer(**rules) -> str:
    """A pretrained-looking tokenizer.json (id 0 its padding) with the given top-level rules of the file set."""
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[PAD]": 0, "[UNK]": 1, "a": 2, "b": 3}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return json.dumps({**json.loads(tok.to_str()), **rules})


def test_a_tokenizer_files_own_padding_and_truncation_allocate_nothing():
    """LayerLab cuts and pads itself: a file's ``padding: Fixed 20,000,000`` made one 3-character text 20 million
    ids (2 GiB in the process that read it, beyond MAX_TOKEN_CELLS' count of n x max_length)."""
    from builder.data.text import pretrained_tokenizer, token_ids

    text = _hostile_tokenizer(
        padding={"strategy": {"Fixed": 20_000_000}, "direction": "Right", "pad_to_multiple_of": None, "pad_id": 0,
                 "pad_type_id": 0, "pad_token": "[PAD]"},
        truncation={"direction": "Left", "max_length": 1, "strategy": "LongestFirst", "stride": 0})
    for tok in (load_tokenizer(text), pretrained_tokenizer(text)):
        assert tok.padding is None and tok.truncation is None
        assert encode(tok, ["a b"], 8).tolist() == [[2, 3, 0, 0, 0, 0, 0, 0]]
        assert token_ids(tok, "a b a") == [2, 3, 2]


def test_a_tokenizer_rule_that_panics_is_one_dataset_error():
    """A regular expression past its backtracking limit panics in the library's Rust code: a PanicException, no
    Exception, went past every ``except`` of a page."""
    from builder.data.text import token_ids

    split = {"type": "Split", "pattern": {"Regex": "(a+)+$"}, "behavior": "Isolated", "invert": False}
    tok = load_tokenizer(_hostile_tokenizer(pre_tokenizer=split))
    with pytest.raises(DatasetError, match="the tokenizer failed on this text .*Fix: a shorter or plainer text"):
        token_ids(tok, "a" * 40 + "b")
    with pytest.raises(DatasetError, match="the tokenizer failed"):
        encode(tok, ["a" * 40 + "b"], 4)


def test_the_preview_offers_a_max_length_that_fits_short_texts():
    """Five-word reviews padded to 64 tokens: a recurrent layer reading the last step stayed at 50 % (the Sentiment
    LSTM on an upload, 15 epochs); the Data page now offers a max length that fits (8: 97 % in 4 epochs)."""
    from builder.data.text import text_preview

    rows = [(f"the film was {'good' if i % 2 else 'bad'} overall", "pos" if i % 2 else "neg") for i in range(60)]
    ds = load_text(_csv_bytes(rows), "label", text_column="sentence", name="s.csv", max_length=64, seed=0)
    assert text_preview(ds, 3)["shorter_max_length"] == 8
    fitted = load_text(_csv_bytes(rows), "label", text_column="sentence", name="s.csv", max_length=8, seed=0)
    assert text_preview(fitted, 3)["shorter_max_length"] is None


def test_the_preview_never_offers_the_max_length_already_in_use():
    """Usability review (issue 29 round): four-word reviews loaded with the LSTM template are read at max length 8,
    and the Data page still warned "padded to 8: mostly padding ... A max length of 8 fits every text here" with a
    "Use max length 8" button that changed nothing. Advice offers a shorter length or nothing."""
    from builder.data.text import shorter_max_length, text_preview

    rows = [(f"{'great lovely' if i % 2 else 'awful boring'} movie {i}", "pos" if i % 2 else "neg") for i in range(60)]
    ds = load_text(_csv_bytes(rows), "label", text_column="sentence", name="s.csv", max_length=8, seed=0)
    assert max(text_preview(ds, 3)["lengths"]) == 4
    assert text_preview(ds, 3)["shorter_max_length"] is None
    for longest in range(1, 40):
        for length in range(2, 90):
            n = shorter_max_length([longest], length)
            assert n is None or longest <= n < length, (longest, length, n)


def test_a_sample_reads_as_its_text(bpe_tok, word_tok):
    """Review of issue 29: Explain's preview of a byte-level BPE sample joined its pieces with spaces
    ("C ust om er"); it reads as the text, trailing padding counted."""
    from builder.data.text import ids_text, vocab_of

    text = "Customer reviews were mixed"
    ids = encode(bpe_tok, [text], 40)[0].tolist()
    shown = ids_text(ids, vocab_of(bpe_tok), bpe_tok)
    pads = ids.count(0)
    assert pads and shown == f"{text} … (+{pads} <pad>)", shown
    words = encode(word_tok, ["the film"], 4)[0].tolist()
    assert ids_text(words, vocab_of(word_tok)) == ids_text(words, vocab_of(word_tok), word_tok)


def _bert_like_tokenizer_json() -> str:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3,
             **{w: i + 4 for i, w in enumerate(["good", "bad", "film", "plot", "was", "very",
                                                "a", "b", "c", "d", "e", "f", "g"])}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                       special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return tok.to_str()


@pytest.mark.parametrize("length", [2, 3, 5, 8, 12])
def test_a_pretrained_tokenizer_truncates_as_transformers_does(length):
    """A text past max_length ends with its [SEP], as transformers truncates (truncation=True): the ids were cut
    after the text's tokens ([CLS] a b c d for 5), so a pretrained model never saw its [SEP] on a long text."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    text = _bert_like_tokenizer_json()
    hf = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(text), pad_token="[PAD]")
    texts = ["a b c d e f g", "good film", "", "very very very bad plot was a b c d e f g a b"]
    ours = encode(load_tokenizer(text), texts, length, special=True).tolist()
    want = hf(texts, truncation=True, max_length=length, padding="max_length")["input_ids"]
    assert ours == want


def test_new_texts_are_encoded_like_the_training_texts(tmp_path):
    """A pretrained tokenizer's run reads [CLS] text [SEP]; the drift check's new texts were encoded without them
    (special_tokens: the one rule texts_dataset and its readers share)."""
    from builder.data.drift import new_token_ids
    from builder.data.splits import DatasetInfo
    from builder.data.text import PRETRAINED, TokenizerOptions, texts_dataset

    texts = ["good film", "bad film", "very good plot", "bad plot was bad"] * 10
    info = DatasetInfo(name="t", task="binary", modality="text", input_shape=(6,), class_names=["neg", "pos"])
    ds = texts_dataset(texts, np.array([1, 0, 1, 0] * 10), info, TokenizerOptions(kind=PRETRAINED, max_length=6),
                       task=None, seed=0, val_fraction=0.25, test_fraction=0.25,
                       pretrained=_bert_like_tokenizer_json())
    (tmp_path / "new.txt").write_text("\n".join(texts[:4]) + "\n")
    new = new_token_ids(ds, tmp_path / "new.txt").tolist()
    assert new[0] == [2, 4, 6, 3, 0, 0]  # [CLS] good film [SEP]
    assert new[3] == [2, 5, 7, 8, 5, 3]
