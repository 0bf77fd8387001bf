"""Text in: a tokenizer learned on the training split only, and token datasets (labelled texts, one corpus).

Three forms of user text load here (:func:`load_text`, the ``text`` source kind of :mod:`builder.data.sources`):
a CSV with a text column and a label column (classification or regression), a zip (or folder) with one folder
of ``.txt`` files per class, and one plain ``.txt`` file (language modelling, task ``next_token``). The built-in
``text_sentiment`` and ``text_corpus`` (:mod:`builder.data.text_builtin`) go through the same two functions,
:func:`texts_dataset` and :func:`corpus_dataset`.

The split comes first; the tokenizer (word-level or byte-level BPE, through the ``tokenizers`` library) is
trained on the training texts only, so validation and test words it never saw are out-of-vocabulary
(``<unk>``), as they would be for new text. Every sample is padded (id :data:`PAD_ID`) or cut to ``max_length``;
:func:`padding_mask` (True = pad) is the mask of those ids (a token split's :meth:`~TokenSplit.padding_mask`);
a compiled model derives the very same mask from the ids itself (``builder.graph.compile.padding_mask_of``), so
the ids alone carry it to the attention layers. The tokenizer travels with the dataset
(``DatasetInfo.tokenizer``, its JSON) and is written to the run folder as ``tokenizer.json``. Example::

    >>> tok = train_tokenizer(["a good film", "a bad film"], TokenizerOptions(vocab_size=50))
    >>> ids = encode(tok, ["a good day"], 5)
    >>> ids.tolist(), decode(tok, ids[0]), padding_mask(ids).tolist()
    ([[2, 5, 1, 0, 0]], 'a good <unk>', [[False, False, False, True, True]])
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import builder.data.limits as limits
from builder.data.files import (
    ZIP_ERRORS,
    check_zip_directory,
    error_name,
    natural_key,
    read_limited,
    read_zip_member,
)
from builder.data.splits import (
    Dataset,
    DatasetInfo,
    Split,
    apply_task,
    dataset_record,
    split_indices,
    task_targets,
)
from builder.errors import DatasetError
from builder.escape import visible
from builder.graph.spec import PAD_ID

if TYPE_CHECKING:
    import torch
    from tokenizers import Tokenizer

PAD, UNK = "<pad>", "<unk>"
UNK_ID = 1  # PAD_ID (0) is the graph's: a compiled model derives its padding mask from it
#: the tokenizer kinds learned on the training split: words split on whitespace and punctuation, or byte-level BPE
#: (no out-of-vocabulary)
TOKENIZER_KINDS = ("word", "bpe")
#: the other kind: a model folder's own ``tokenizer.json``, used as it is (the run starts from that model)
PRETRAINED = "pretrained"
#: the padding tokens a pretrained tokenizer's id 0 may be (LayerLab pads with id 0: PAD_ID)
PAD_TOKENS = (PAD, "[PAD]", "<|pad|>")
#: the unknown-word tokens: LayerLab's own and a pretrained tokenizer's
UNK_TOKENS = (UNK, "[UNK]", "<|unk|>")
TEXT_SUFFIXES = (".csv", ".zip", ".txt")
#: texts are encoded a batch at a time: at most this many characters (the library holds ~140 bytes a character
#: while it encodes) or texts per ``encode_batch`` call
_BATCH_CHARS, _BATCH_TEXTS = 2**18, 1024
#: a corpus is encoded a piece of at most this many characters at a time, cut at a line break (or, in a longer
#: line, before its last whitespace), so a long corpus is refused at MAX_TOKEN_CELLS before the rest is encoded
_PIECE_CHARS = 2**18
#: a text longer than its first ``max_length`` tokens can need is cut before it is encoded (:func:`encode`), at
#: the next whitespace within this many characters of that bound
_CUT_SLACK = 2**12
_WHITESPACE = re.compile(r"\s")
_LAST_WHITESPACE = re.compile(r"\s(?=\S*\Z)")


class RunTokenizer(str):
    """A model's ``tokenizer.json`` text that the server read from a run's folder (option ``pretrained``, handed in
    by :mod:`builder.training.lineage`). Made only by that code, never by decoded content (JSON gives plain
    strings): content never gives a tokenizer (:func:`builder.data.sources.content_problems` refuses a plain one),
    and the run's own is not mistaken for a path, whatever characters its vocabulary holds ('and/or', '##/').
    It is the text itself, so it records and serialises as text."""

    __slots__ = ()


@dataclass(frozen=True)
class TokenizerOptions:
    """How a tokenizer is learned and applied: ``kind`` (word or bpe), ``vocab_size``, ``lowercase``,
    ``max_length`` (tokens per sample, padded or cut)."""

    kind: str = "word"
    vocab_size: int = 5000
    lowercase: bool = True
    max_length: int = 64

    def problems(self) -> list[str]:
        """Every option out of range, each as "rule; received: value" (empty: fine)."""
        out = []
        if self.kind not in (*TOKENIZER_KINDS, PRETRAINED):
            out.append(f"tokenizer is one of {', '.join((*TOKENIZER_KINDS, PRETRAINED))}; received: "
                       f"{str(self.kind)[:40]!r}")
        lo, hi = limits.OPTION_RANGES["vocab_size"]
        lo = limits.BPE_MIN_VOCAB if self.kind == "bpe" else lo
        if not _int(self.vocab_size) or not lo <= self.vocab_size <= hi:
            out.append(f"vocab_size is an integer from {lo} to {hi} (limits.MAX_VOCAB_SIZE); "
                       f"received: {str(self.vocab_size)[:40]}")
        lo, hi = limits.OPTION_RANGES["max_length"]
        if not _int(self.max_length) or not lo <= self.max_length <= hi:
            out.append(f"max_length is an integer from {lo} to {hi} (limits.MAX_SEQ_LENGTH); "
                       f"received: {str(self.max_length)[:40]}")
        if not isinstance(self.lowercase, bool):
            out.append(f"lowercase is true or false; received: {str(self.lowercase)[:40]}")
        return out

    def check(self) -> TokenizerOptions:
        """Self, or DatasetError naming every problem at once."""
        problems = self.problems()
        if problems:
            raise DatasetError(f"bad tokenizer options: {'; '.join(problems)}. Fix: e.g. tokenizer='word', "
                               "vocab_size=5000, lowercase=True, max_length=64")
        return self


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# ------------------------------------------------------------------------------------------ tokenizer
def training_sample(texts: Any) -> tuple[list[str], bool]:
    """The first texts of ``texts`` (in order) up to :data:`~builder.data.limits.MAX_TOKENIZER_TRAIN_CHARS`
    characters in all, the last one cut there; and whether anything was left out.

    >>> training_sample(["ab", "cd"])
    (['ab', 'cd'], False)
    """
    out, left = [], limits.MAX_TOKENIZER_TRAIN_CHARS
    for t in texts:
        if len(t) > left:
            if left:
                out.append(t[:left])
            return out, True
        out.append(t)
        left -= len(t)
    return out, False


def train_tokenizer(texts: list[str], opts: TokenizerOptions) -> Tokenizer:
    """A tokenizer learned from ``texts`` (the training split only; its first
    :data:`~builder.data.limits.MAX_TOKENIZER_TRAIN_CHARS` characters: :func:`training_sample`): ids 0 and 1 are
    ``<pad>`` and ``<unk>``."""
    from tokenizers import (  # lazy: heavy (tokenizers)
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )

    opts.check()
    norm = [normalizers.NFKC(), *([normalizers.Lowercase()] if opts.lowercase else [])]
    if opts.kind == "word":
        tok = Tokenizer(models.WordLevel(unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        trainer = trainers.WordLevelTrainer(vocab_size=opts.vocab_size, special_tokens=[PAD, UNK],
                                            show_progress=False)
    else:
        tok = Tokenizer(models.BPE(unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=opts.vocab_size, special_tokens=[PAD, UNK], show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.normalizer = normalizers.Sequence(norm)
    sample = training_sample(texts)[0]  # a long text in pieces: the library holds ~140 bytes a character of one
    tok.train_from_iterator((c for t in sample for c in _chunks(t, _PIECE_CHARS)), trainer)
    return tok


def load_tokenizer(text: str) -> Tokenizer:
    """The tokenizer of its JSON (``DatasetInfo.tokenizer``, a run's ``tokenizer.json``), its own padding and
    truncation turned off: LayerLab cuts and pads (:func:`encode`), so a file's ``"padding": {"Fixed": 2e9}``
    allocates nothing. A tokenizer is a pipeline the ``tokenizers`` library runs (normalisers, regular expressions)
    from a file a job or a model folder wrote: the server never loads one (a sandboxed Try it or Explain session
    tokenizes in its child). Raises DatasetError."""
    from tokenizers import Tokenizer  # lazy: heavy (tokenizers)

    try:
        tok = Tokenizer.from_str(text)
    except Exception as e:  # the library raises its own Exception subclass
        raise DatasetError(f"a tokenizer is the JSON LayerLab saved with the run; received: unreadable "
                           f"({str(e)[:80]}). Fix: train the run again") from None
    tok.no_padding()
    tok.no_truncation()
    return tok


@contextlib.contextmanager
def _library_errors() -> Iterator[None]:
    """The tokenizers library's failures as one DatasetError: a rule of the file that panics in its Rust code (a
    regular expression past its backtracking limit) raises ``PanicException``, which is no ``Exception``."""
    try:
        yield
    except BaseException as e:
        if not isinstance(e, Exception) and type(e).__name__ != "PanicException":  # Ctrl-C, exit: theirs
            raise
        raise DatasetError(f"the tokenizer failed on this text ({str(e)[:80]}). Fix: a shorter or plainer text, or "
                           "tokenizer 'word' or 'bpe' (learned on your texts)") from None


def _encodings(tok: Tokenizer, texts: list[str], special: bool) -> list[Any]:
    """``tok.encode_batch``, its failures one DatasetError (:func:`_library_errors`)."""
    with _library_errors():
        return tok.encode_batch(texts, add_special_tokens=special)


def _post_processed(tok: Tokenizer, encoding: Any) -> Any:
    """``tok.post_process`` (its special tokens added), its failures one DatasetError (:func:`_library_errors`)."""
    with _library_errors():
        return tok.post_process(encoding, add_special_tokens=True)


def token_ids(tok: Tokenizer, text: str) -> list[int]:
    """One text's token ids, no special tokens, neither cut nor padded."""
    return list(_encodings(tok, [text], False)[0].ids)


def special_tokens(info: DatasetInfo) -> bool:
    """Whether a dataset's texts are encoded with the special tokens their tokenizer adds: a pretrained model's
    tokenizer (``[CLS]`` ... ``[SEP]``, as the model was trained), not one learned on the texts. The one rule the
    training data, Try it, predictions and drift checks read: Try it fed a model trained on ``[CLS] bad plot
    [SEP]`` the ids of ``bad plot`` alone."""
    return info.options.get("tokenizer") == PRETRAINED


def encode(tok: Tokenizer, texts: list[str], max_length: int, *, special: bool = False) -> np.ndarray:
    """Token ids (N, max_length) int64: each text cut to ``max_length`` tokens and padded with :data:`PAD_ID`;
    ``special``: with the special tokens the tokenizer adds (a pretrained model's ``[CLS]``, ``[SEP]``), the text
    cut to leave room for them, as ``transformers`` truncates (a long text ends with its ``[SEP]``; it was cut
    after the text's first tokens, so the model never saw its ``[SEP]``)."""
    n = len(texts)
    if n * max_length > limits.MAX_TOKEN_CELLS:
        raise DatasetError(f"{n:,} texts of {max_length} tokens are more token ids than the limit of "
                           f"{limits.MAX_TOKEN_CELLS:,} (limits.MAX_TOKEN_CELLS); received: {n * max_length:,}. "
                           "Fix: a smaller max_length or fewer texts")
    out = np.full((n, max_length), PAD_ID, dtype=np.int64)
    keep = max(max_length - tok.num_special_tokens_to_add(False), 0) if special else max_length  # the text's tokens
    longest = max((len(t) for t in tok.get_vocab()), default=1)
    bound = min(max_length * (longest + 1) * 2 + _CUT_SLACK, _BATCH_CHARS)
    start = 0
    while start < n:  # a batch of texts, each cut where its first max_length tokens surely end
        stop, chars, batch, cut = start, 0, [], []
        while stop < n and len(batch) < _BATCH_TEXTS and (not batch or chars < _BATCH_CHARS):
            t, was_cut = _head(str(texts[stop]), bound)
            batch.append(t)
            cut.append(was_cut)
            chars += len(t)
            stop += 1
        for i, (e, was_cut) in enumerate(zip(_encodings(tok, batch, False), cut, strict=True)):
            b = bound
            while was_cut and len(e.ids) <= keep and b < _BATCH_CHARS:  # fell short (runs of spaces): longer
                b = min(b * 8, _BATCH_CHARS)
                t, was_cut = _head(str(texts[start + i]), b)
                e = _encodings(tok, [t], False)[0]
            if special:  # the text's first tokens, then the tokenizer's own [CLS] ... [SEP] around them
                e.truncate(keep)
                e = _post_processed(tok, e)
            ids = e.ids[:max_length]
            out[start + i, :len(ids)] = ids
        start = stop
    return out


def _head(text: str, bound: int) -> tuple[str, bool]:
    """``text`` cut at whitespace near ``bound`` characters, and whether it was cut. A word is never cut in two
    where the text has whitespace (a word's prefix may tokenize otherwise: a WordPiece ``[UNK]`` of 6,000 letters
    became 4 pieces): its first whitespace from ``bound`` on (at most :data:`_CUT_SLACK` further), else its last
    before ``bound`` (the long word left out: :func:`encode` reads further when that gave too few tokens), else
    at ``bound``.

    >>> _head("ab cd", 9), _head("ab cd ef", 4), _head("ab " + "x" * 9000, 5), _head("x" * 9000, 5)[0]
    (('ab cd', False), ('ab cd', True), ('ab', True), 'xxxxx')
    """
    if len(text) <= bound:
        return text, False
    if m := _WHITESPACE.search(text, bound, bound + _CUT_SLACK):
        return text[:m.start()], True
    if (m := _LAST_WHITESPACE.search(text, 0, bound)) and m.start() > 0:
        return text[:m.start()], True
    return text[:bound], True


def decode(tok: Tokenizer, ids: Any) -> str:
    """The text of token ids, padding dropped, ``<unk>`` kept visible."""
    ids = [int(i) for i in np.asarray(ids).reshape(-1) if int(i) != PAD_ID]
    if tok.decoder is None:  # word-level: words joined by spaces
        return " ".join(tok.id_to_token(i) or UNK for i in ids)
    return tok.decode(ids, skip_special_tokens=False)


def tokens_text(tokens: list[str]) -> str:
    """A sample's tokens as one line to read, its trailing padding counted instead of written out: a five-word
    sentence padded to 64 tokens showed as 59 ``<pad>`` filling the Explain page's first screen at 900x900.

    >>> tokens_text(["a", "film", PAD, PAD]), tokens_text(["a", PAD, "b"]), tokens_text([PAD])
    ('a film … (+2 <pad>)', 'a <pad> b', '<pad>')
    """
    end = len(tokens)
    while end > 1 and tokens[end - 1] in PAD_TOKENS:
        end -= 1
    pads = len(tokens) - end
    return " ".join(tokens[:end]) + (f" … (+{pads} {tokens[-1]})" if pads else "")


def ids_text(ids: list[int], vocab: list[str], tok: Tokenizer | None = None) -> str:
    """A sample's token ids as the text to read, trailing padding counted (:func:`tokens_text`): with a tokenizer,
    decoded (subword pieces joined as the text they came from: ``Customer``, not ``C ust om er``); without one, the
    vocabulary's words separated by spaces.

    >>> ids_text([5, 6, 0, 0], ["<pad>", "<unk>", "", "", "", "a", "film"])
    'a film … (+2 <pad>)'
    """
    ids = [int(i) for i in ids]
    end = len(ids)
    while end > 1 and ids[end - 1] == PAD_ID:
        end -= 1
    pads = len(ids) - end
    pad = vocab[PAD_ID] if vocab else PAD
    if tok is None:
        words = [str(vocab[i]) if 0 <= i < len(vocab) else str(i) for i in ids[:end]]
        return tokens_text(words + [pad] * pads)
    return decode(tok, ids[:end]) + (f" … (+{pads} {pad})" if pads else "")


def vocab_of(tok: Tokenizer) -> list[str]:
    """Each id's token as people read it (byte-level pieces decoded: ``Ġgood`` is `` good``), in id order."""
    n = tok.get_vocab_size()
    if tok.decoder is None:
        return [tok.id_to_token(i) or UNK for i in range(n)]
    return [PAD, UNK, *(tok.decode([i]) for i in range(2, n))]


def padding_mask(ids: Any) -> Any:
    """True where ``ids`` (a numpy array or a tensor of token ids) is padding: the mask attention layers take.

    >>> padding_mask(np.array([[4, 0]])).tolist()
    [[False, True]]
    """
    return ids == PAD_ID


class TokenSplit(Split):
    """A split of token ids (N, max_length) whose batches carry their padding mask (``padding_mask``)."""

    def padding_mask(self, idx: torch.Tensor | None = None) -> torch.Tensor:
        """True where rows ``idx`` (all rows without it) are padding, (B, T) bool."""
        return padding_mask(self.X if idx is None else self.X[idx])

    def to(self, device: Any) -> TokenSplit:
        s = super().to(device)
        return TokenSplit(s.X, s.y)

    def head(self, k: int) -> TokenSplit:
        return TokenSplit(self.X[:k], self.y[:k])


# --------------------------------------------------------------------------------------------- datasets
def _with_tokenizer(info: DatasetInfo, tok: Tokenizer, opts: TokenizerOptions) -> None:
    info.vocab = vocab_of(tok)
    info.tokenizer = tok.to_str()
    info.input_dtype = "int64"
    info.options.update(tokenizer=opts.kind, vocab_size=opts.vocab_size, lowercase=opts.lowercase,
                        max_length=opts.max_length)
    info.notes.append(f"{'word-level' if opts.kind == 'word' else 'byte-level BPE'} tokenizer of "
                      f"{len(info.vocab)} tokens learned on the training split only; samples padded or cut to "
                      f"{opts.max_length} tokens (id {PAD_ID} = {PAD}, padding_mask True there)")


def pretrained_tokenizer(text: str) -> Tokenizer:
    """A model folder's tokenizer (its ``tokenizer.json`` text, read by the ``tokenizers`` library: nothing runs)
    whose id 0 is its padding token, as LayerLab pads with :data:`PAD_ID`.

    Raises:
        DatasetError: unreadable, a vocabulary over :data:`~builder.data.limits.MAX_PRETRAINED_VOCAB`, or id 0 is
            not a padding token.
    """
    tok = load_tokenizer(text)
    if (size := tok.get_vocab_size()) > limits.MAX_PRETRAINED_VOCAB:  # each token is listed with the dataset
        raise DatasetError(f"a pretrained tokenizer has at most {limits.MAX_PRETRAINED_VOCAB:,} tokens; received: "
                           f"{size:,}. Fix: use tokenizer 'word' or 'bpe' (learned on your texts) with this model")
    first = tok.id_to_token(PAD_ID)
    if first not in PAD_TOKENS:
        raise DatasetError(f"a pretrained tokenizer pads with id {PAD_ID} here, so its id {PAD_ID} is its padding "
                           f"token ({', '.join(PAD_TOKENS)}); received: id {PAD_ID} = {str(first)[:20]!r}. Fix: "
                           "use tokenizer 'word' or 'bpe' (learned on your texts) with this model")
    return tok


def _pretrained_info(info: DatasetInfo, tok: Tokenizer, text: str, opts: TokenizerOptions) -> None:
    info.vocab = [tok.id_to_token(i) or UNK for i in range(tok.get_vocab_size())]
    info.tokenizer = text
    info.input_dtype = "int64"
    info.options.update(tokenizer=PRETRAINED, tokenizer_sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                        max_length=opts.max_length)
    info.notes.append(f"the model's own tokenizer ({len(info.vocab)} tokens); samples padded or cut to "
                      f"{opts.max_length} tokens (id {PAD_ID} = {info.vocab[PAD_ID]}, padding_mask True there)")


def texts_dataset(texts: list[str], y: np.ndarray, info: DatasetInfo, opts: TokenizerOptions, *,
                  task: str | None, seed: int, val_fraction: float, test_fraction: float,
                  pretrained: str | None = None) -> Dataset:
    """Labelled texts as a token dataset: split (stratified for classification), a tokenizer learned on the
    training texts (or, with ``pretrained``, that tokenizer's JSON: a model folder's, special tokens added as it
    adds them), every text encoded. ``info`` names the task and classes; ``y`` class ids or values."""
    import torch  # lazy: heavy (torch)

    opts.check()
    y = apply_task(np.asarray(y), info, task)
    classification = info.task in ("multiclass", "binary")
    tr, va, te = split_indices(y if classification else None, len(texts), seed=seed, val_fraction=val_fraction,
                               test_fraction=test_fraction, stratify=classification)
    if opts.kind == PRETRAINED:
        if not pretrained:
            raise DatasetError("tokenizer 'pretrained' is the tokenizer of the model the run starts from; received: "
                               "no such tokenizer. Fix: start from (init_from) a model imported from a folder with "
                               "a tokenizer.json, or use tokenizer 'word' or 'bpe'")
        tok = pretrained_tokenizer(pretrained)
        _pretrained_info(info, tok, pretrained, opts)
        X = torch.from_numpy(encode(tok, texts, opts.max_length, special=special_tokens(info)))
    else:
        sample, cut = training_sample(texts[i] for i in tr)
        tok = train_tokenizer(sample, opts)
        X = torch.from_numpy(encode(tok, texts, opts.max_length))
        _with_tokenizer(info, tok, opts)
        if cut:
            info.notes.append(_sample_note(sum(len(texts[i]) for i in tr)))
    yt = task_targets(y, tr, info, (opts.max_length,))
    dataset_record(info, (opts.max_length,), (tr, va, te), seed, val_fraction, test_fraction)

    def part(idx: np.ndarray) -> TokenSplit:
        ix = torch.from_numpy(np.ascontiguousarray(idx, dtype=np.int64))
        return TokenSplit(X[ix], yt[ix])
    return Dataset(info, part(tr), part(va), part(te))


def corpus_dataset(text: str, info: DatasetInfo, opts: TokenizerOptions, *, seed: int, val_fraction: float,
                   test_fraction: float) -> Dataset:
    """One corpus for language modelling (task ``next_token``): cut by position into training, validation and
    test text (in that order, so no block of validation or test text is trained on), a tokenizer learned on the
    training text, each part's token stream cut into blocks of ``max_length + 1``: inputs the first
    ``max_length`` tokens, targets the same block shifted by one."""
    import torch  # lazy: heavy (torch)

    opts.check()
    for nm, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not (isinstance(f, int | float) and 0 < f < 0.45):
            raise DatasetError(f"{nm} of a corpus is between 0 and 0.45; received: {f!r}. Fix: e.g. 0.1")
    n = len(text)
    a, b = int(n * (1 - val_fraction - test_fraction)), int(n * (1 - test_fraction))
    parts = [text[:a], text[a:b], text[b:]]
    head = parts[0][:limits.MAX_TOKENIZER_TRAIN_CHARS]  # the tokenizer's sample (training_sample), lines of it
    tok = train_tokenizer([ln for ln in head.splitlines() if ln.strip()], opts)
    L = opts.max_length
    splits = []
    for part in parts:
        ids = _corpus_ids(tok, part, L, info.name)
        k = (len(ids) - 1) // L
        if k < 1:
            raise DatasetError(f"{info.name}: a corpus part is shorter than one block of {L + 1} tokens; "
                               f"received: {len(ids)} tokens. Fix: a longer text, a smaller max_length or larger "
                               "val_fraction/test_fraction")
        x = ids[:k * L].reshape(k, L)
        t = ids[1:k * L + 1].reshape(k, L)
        splits.append(TokenSplit(torch.from_numpy(x.copy()), torch.from_numpy(t.copy())))
    info.task = "next_token"
    _with_tokenizer(info, tok, opts)
    info.num_classes, info.class_names = None, []
    info.out_size = len(info.vocab)
    dataset_record(info, (L,), tuple(s.X for s in splits), seed, val_fraction, test_fraction)
    info.notes.append("corpus cut by position: the first part trains, the next validates, the last tests")
    if len(head) < len(parts[0]):
        info.notes.append(_sample_note(len(parts[0])))
    return Dataset(info, *splits)


def _sample_note(chars: int) -> str:
    return (f"tokenizer learned on the first {limits.MAX_TOKENIZER_TRAIN_CHARS:,} characters of the training text "
            f"(of {chars:,}; limits.MAX_TOKENIZER_TRAIN_CHARS)")


def _chunks(text: str, size: int, *, lines: bool = False) -> Iterator[str]:
    r"""``text`` in pieces of at most ``size`` characters that join to it: each cut after its last line end (with
    ``lines``), else before its last whitespace (words and pre-tokens stay whole), else at ``size``.

    >>> list(_chunks("ab cd ef", 6)), list(_chunks("ab\ncd ef\n", 8, lines=True))
    (['ab cd', ' ef'], ['ab\n', 'cd ef\n'])
    """
    pos, n = 0, len(text)
    while pos < n:
        piece = text[pos:pos + size]
        if pos + len(piece) < n:
            cut = piece.rfind("\n") + 1 if lines else 0  # a '\r\n' stays whole
            if cut <= 0 and (m := _LAST_WHITESPACE.search(piece)) and m.start() > 0:
                cut = m.start()
            piece = piece[:cut] if cut > 0 else piece
        pos += len(piece)
        yield piece


def _corpus_ids(tok: Tokenizer, part: str, L: int, name: str) -> np.ndarray:
    """The token ids of a corpus part (each line encoded as it is), int64, encoded a piece at a time: refused
    (DatasetError) once its blocks of ``L`` are over :data:`~builder.data.limits.MAX_TOKEN_CELLS`, before the
    rest is encoded."""
    chunks, count, done = [], 0, 0
    for piece in _chunks(part, _PIECE_CHARS, lines=True):
        lines = piece.splitlines(keepends=True)
        for i in range(0, len(lines), _BATCH_TEXTS):
            ids = [j for e in _encodings(tok, lines[i:i + _BATCH_TEXTS], False) for j in e.ids]
            chunks.append(np.asarray(ids, dtype=np.int32))  # ids < MAX_VOCAB_SIZE
            count += len(ids)
            if (count - 1) // L * L > limits.MAX_TOKEN_CELLS:
                raise DatasetError(f"{name}: a corpus part is at most {limits.MAX_TOKEN_CELLS:,} token ids "
                                   f"(limits.MAX_TOKEN_CELLS); received: over {(count - 1) // L * L:,} in its first "
                                   f"{done + sum(map(len, lines)):,} of {len(part):,} characters. Fix: a shorter corpus")
        done += sum(map(len, lines))
    return np.concatenate(chunks).astype(np.int64) if chunks else np.zeros(0, np.int64)


def text_preview(ds: Dataset, n: int = 10) -> dict:
    """What the Data page shows of a token dataset: ``samples`` (the first ``n`` training samples as tokens,
    padding dropped, with their label), ``lengths`` (tokens per training sample before padding, for a histogram),
    ``cut`` (the share of samples that filled ``max_length``: possibly cut), ``oov_rate`` (the share of the
    validation and test tokens that are ``<unk>``: words the tokenizer never saw in training), ``vocab_size`` and
    ``shorter_max_length`` (:func:`shorter_max_length`, or None)."""
    vocab = list(ds.info.vocab)
    X = ds.train.X
    lengths = (X != PAD_ID).sum(1)
    samples = []
    for item in ds.preview(n):
        toks = [vocab[i] if 0 <= i < len(vocab) else str(i) for i in item["x"] if i != PAD_ID]
        samples.append({"tokens": toks, "label": item.get("label", item.get("y", ""))})
    held = [s.X for s in (ds.val, ds.test) if len(s)]
    real = sum(int((h != PAD_ID).sum()) for h in held)
    unk = sum(int((h == UNK_ID).sum()) for h in held)
    return {"samples": samples, "lengths": lengths.tolist(), "vocab_size": len(vocab),
            "cut": float((lengths == X.shape[1]).float().mean()) if len(X) else 0.0,
            "oov_rate": unk / real if real else 0.0,
            "shorter_max_length": shorter_max_length(lengths.tolist(), int(X.shape[1])) if len(X) else None}


def shorter_max_length(lengths: list[int], max_length: int) -> int | None:
    """A max length that fits texts of ``lengths`` tokens (the longest, rounded up to a multiple of 8) when
    ``max_length`` is over twice the longest, else None. Every sample is padded at its end, and a recurrent layer
    that reads its last step carries its answer through all that padding: the Sentiment LSTM on 240 five-word
    reviews padded to 64 stayed at 50 % validation accuracy after 15 epochs; padded to 8 it reached 97 % in 4.

    The length offered is always shorter than ``max_length``: four-word texts read at 8 were told "a max length of
    8 fits every text here" beside a "Use max length 8" button that changed nothing.

    >>> shorter_max_length([5, 6, 3], 64), shorter_max_length([40, 12], 64), shorter_max_length([9], 20)
    (8, None, 16)
    >>> shorter_max_length([4], 8), shorter_max_length([3], 7)
    (None, None)
    """
    longest = max(lengths, default=0)
    if not longest or 2 * longest > max_length:
        return None
    shorter = max(2, -(-longest // 8) * 8)
    return shorter if shorter < max_length else None


# ------------------------------------------------------------------------------------------ user files
def load_text(path: str | Path | bytes, target: str | None = None, task: str | None = None, *,
              text_column: str = "text", tokenizer: str = "word", vocab_size: int = 5000, lowercase: bool = True,
              max_length: int = 64, seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15,
              name: str | None = None, pretrained: str | None = None, tokenizer_sha256: str | None = None) -> Dataset:
    """Load user text as a token dataset, by the file's kind: a ``.csv`` (``text_column`` and label column
    ``target``), a ``.zip`` or folder of ``.txt`` files in one folder per class, or one ``.txt`` corpus
    (task ``next_token``). Sizes are checked against :mod:`builder.data.limits` before anything is held.
    ``tokenizer="pretrained"`` tokenizes labelled texts with ``pretrained`` (a model folder's ``tokenizer.json``
    text, handed in by the pipeline from the run the model starts from); ``tokenizer_sha256``, recorded with a
    run, must then be that text's hash (a reload gets the very tokenizer it trained with).

    Raises:
        DatasetError: a missing column, one class, bad tokenizer options, a size limit.
    """
    opts = TokenizerOptions(tokenizer, vocab_size, lowercase, max_length).check()
    if tokenizer == PRETRAINED and pretrained and tokenizer_sha256 and \
            hashlib.sha256(pretrained.encode("utf-8")).hexdigest() != tokenizer_sha256:
        raise DatasetError("a run's pretrained tokenizer is the one it trained with; received: another "
                           "tokenizer.json. Fix: reload the run with its own tokenizer.json")
    label = name or (Path(path).name if not isinstance(path, bytes) else "uploaded text")
    split = {"seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction}
    low = label.lower() if isinstance(path, bytes) else str(path).lower()
    if not isinstance(path, bytes) and Path(path).is_dir():
        texts, y, names = _folder_texts(Path(path), label)
        kind = "folder"
    elif low.endswith(".zip"):
        texts, y, names = _zip_texts(read_limited(path, limits.MAX_TEXT_BYTES, "zip of texts"), label)
        kind = "zip"
    elif low.endswith(".csv"):
        if not target:
            raise DatasetError(f"{label}: a CSV of texts needs its label column; received: no target. Fix: "
                               "target=<the label column> (and text_column=<the text column>)")
        return _csv_texts(path, target, task, text_column, opts, label, split, pretrained)
    elif low.endswith(".txt"):
        if task not in (None, "next_token"):
            raise DatasetError(f"{label}: one plain text file is a corpus for language modelling; received: task "
                               f"{task!r}. Fix: task next_token, or a CSV/zip of labelled texts")
        if opts.kind == PRETRAINED:
            raise DatasetError(f"{label}: a pretrained tokenizer tokenizes labelled texts (a CSV or a zip); "
                               "received: one .txt corpus. Fix: tokenizer 'word' or 'bpe' for a corpus")
        text = _decode(read_limited(path, limits.MAX_TEXT_BYTES, "text file"), label)
        info = DatasetInfo(name=f"text:{label}", task="next_token", modality="tokens", input_shape=(max_length,),
                           description=f"language modelling on {label}", source="text")
        return corpus_dataset(text, info, opts, **split)
    else:
        raise DatasetError(f"{label}: text comes as a .csv, a .zip (one folder of .txt per class) or one .txt; "
                           f"received: {Path(low).suffix or 'no suffix'}. Fix: save it as one of them")
    info = DatasetInfo(name=f"text:{label}", task="binary" if len(names) == 2 else "multiclass",
                       modality="tokens", input_shape=(max_length,), class_names=names, source="text",
                       description=f"texts of {len(names)} classes from a {kind} ({label})")
    return texts_dataset(texts, y, info, opts, task=task, **split, pretrained=pretrained)


def read_new_texts(path: str | Path, text_column: str | None = None) -> list[str]:
    """The texts of new data for a text run (drift, prediction): a ``.csv`` (its ``text_column``, no label
    needed), a ``.txt`` (one text per non-empty line) or a ``.zip`` of ``.txt`` files (one text per file, any
    folders). Sizes are checked against :mod:`builder.data.limits`.

    Raises:
        DatasetError: another kind of file, a missing column, no text.
    """
    label = Path(path).name
    low = label.lower()
    data = read_limited(path, limits.MAX_TEXT_BYTES, "new texts")
    if low.endswith(".csv"):
        from builder.data.tabular import read_csv_capped  # lazy: heavy (pandas)

        col = text_column or "text"
        df = read_csv_capped(data, label, limits.MAX_CSV_ROWS, columns=[col], dtype=str, keep_default_na=False)
        df.columns = [str(c).strip() for c in df.columns]
        if col not in df.columns:
            import pandas as pd  # lazy: heavy (pandas)

            header = [str(c).strip() for c in pd.read_csv(io.BytesIO(data), nrows=0).columns]  # bounded: checked
            raise DatasetError(f"{label}: the text column {col!r} of the run's data is not there; received columns: "
                               f"{', '.join(map(repr, header[:30]))}. Fix: name the column of texts {col!r}")
        texts = df[col].tolist()
    elif low.endswith(".txt"):
        texts = _decode(data, label).splitlines()
    elif low.endswith(".zip"):
        texts = [_decode(b, label) for _, b in _zip_items(data, label, top_level=True)]
    else:
        raise DatasetError(f"{label}: new texts come as a .csv, a .txt (one text per line) or a .zip of .txt files; "
                           f"received: {Path(low).suffix or 'no suffix'}. Fix: save them as one of these")
    texts = [t for t in (str(t).strip() for t in texts) if t]
    if not texts:
        raise DatasetError(f"{label}: no text found; received an empty file. Fix: give at least a few dozen texts")
    return texts


def _decode(data: bytes, label: str) -> str:
    for enc in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _csv_texts(path: Any, target: str, task: str | None, text_column: str, opts: TokenizerOptions, label: str,
               split: dict, pretrained: str | None = None) -> Dataset:
    import pandas as pd  # lazy: heavy (pandas)

    from builder.data.table_plan import TablePlan  # lazy: heavy (numpy)
    from builder.data.tabular import read_csv_capped  # lazy: heavy (pandas)

    data = read_limited(path, limits.MAX_TEXT_BYTES, "CSV of texts")
    df = read_csv_capped(data, label, limits.MAX_CSV_ROWS, columns=[text_column, target], dtype=str,
                         keep_default_na=False, na_values=[""])  # the two columns, bounded before they are whole
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in (text_column, target) if c not in df.columns]
    if missing:
        header = [str(c).strip() for c in pd.read_csv(io.BytesIO(data), nrows=0).columns]  # bounded: checked
        raise DatasetError(f"{label}: column(s) {', '.join(map(repr, missing))} not found; received columns: "
                           f"{', '.join(map(repr, header[:30]))}. Fix: text_column=... and target=...")
    if len(df) > limits.MAX_CSV_ROWS:
        raise DatasetError(f"{label}: {len(df):,} rows, over the limit of {limits.MAX_CSV_ROWS:,}. Fix: sample it")
    df = df[df[target].notna()]
    frame = pd.DataFrame({target: df[target], "length": df[text_column].fillna("").str.len()})
    plan = TablePlan(target, task, label)  # the label column read as a CSV target is read (task, classes)
    plan.scan(frame)
    enc = plan.decide()
    _, y = plan.encode(frame)
    info = DatasetInfo(name=f"text:{label}", task=enc.task, modality="tokens", input_shape=(opts.max_length,),
                       class_names=list(enc.class_names), source="text",
                       description=f"texts of column {text_column!r}, label {target!r} ({label})")
    info.options.update(target=target, text_column=text_column)
    return texts_dataset(df[text_column].fillna("").tolist(), y, info, opts, task=None, **split,
                         pretrained=pretrained)


def _by_class(items: list[tuple[str, bytes]], label: str) -> tuple[list[str], np.ndarray, list[str]]:
    names = sorted({c for c, _ in items}, key=natural_key)
    if len(names) < 2:
        raise DatasetError(f"{label}: texts by class need at least two class folders of .txt files; received: "
                           f"{len(names)}. Fix: one folder per class (e.g. pos/ and neg/)")
    index = {c: i for i, c in enumerate(names)}
    return [_decode(b, label) for _, b in items], np.array([index[c] for c, _ in items], np.int64), names


def _zip_texts(data: bytes, label: str) -> tuple[list[str], np.ndarray, list[str]]:
    return _by_class(_zip_items(data, label), label)


def _zip_items(data: bytes, label: str, top_level: bool = False) -> list[tuple[str, bytes]]:
    """``(class folder, bytes)`` of each ``.txt`` of a zip; those at the top (no folder: class "") only with
    ``top_level``. The directory is bounded before it is parsed, each member read capped at its declared size
    (:func:`builder.data.files.read_zip_member`): a damaged zip is one DatasetError."""
    check_zip_directory(data, label)
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except ZIP_ERRORS as e:
        raise DatasetError(f"{label}: not a readable zip; received: {error_name(e)}. Fix: zip the class "
                           "folders") from None
    if len(infos) > limits.MAX_ZIP_ENTRIES:
        raise DatasetError(f"{label}: {len(infos):,} zip entries, over the limit of {limits.MAX_ZIP_ENTRIES:,}")
    items, total = [], 0
    for i in infos:
        parts = [p for p in i.filename.replace("\\", "/").split("/") if p]
        if i.is_dir() or not i.filename.lower().endswith(".txt") or any(p.startswith((".", "__")) for p in parts):
            continue
        if i.filename.startswith(("/", "\\")) or ".." in parts or i.flag_bits & 0x1:
            raise DatasetError(f"{label}: a zip member points outside the archive or is encrypted; received: "
                               f"{visible(i.filename, 80)!r}. Fix: zip the class folders themselves, without a "
                               "password")
        total += i.file_size
        if total > limits.MAX_TEXT_BYTES or len(items) >= limits.MAX_TEXT_FILES:
            raise DatasetError(f"{label}: the texts are over the limit of {limits.MAX_TEXT_BYTES // 2**20} MiB or "
                               f"{limits.MAX_TEXT_FILES:,} files (limits.MAX_TEXT_BYTES, MAX_TEXT_FILES). Fix: a subset")
        if len(parts) < 2 and not top_level:
            continue  # a .txt at the top has no class
        items.append((parts[-2] if len(parts) > 1 else "", read_zip_member(zf, i, label)))
    return items


def _folder_texts(root: Path, label: str) -> tuple[list[str], np.ndarray, list[str]]:
    items, total = [], 0
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        for f in sorted(d.iterdir()):
            if f.suffix.lower() != ".txt" or f.is_symlink() or not f.is_file():
                continue
            body = read_limited(f, limits.MAX_TEXT_BYTES - total, "text")
            total += len(body)
            if len(items) >= limits.MAX_TEXT_FILES:
                raise DatasetError(f"{label}: over {limits.MAX_TEXT_FILES:,} text files (limits.MAX_TEXT_FILES)")
            items.append((d.name, body))
    return _by_class(items, label)


__all__ = ["PAD", "UNK", "PAD_ID", "UNK_ID", "TOKENIZER_KINDS", "RunTokenizer", "TokenizerOptions", "TokenSplit", "train_tokenizer",
           "load_tokenizer", "token_ids", "special_tokens", "encode", "decode", "training_sample", "tokens_text", "ids_text", "vocab_of", "padding_mask", "texts_dataset", "corpus_dataset",
           "load_text", "read_new_texts", "text_preview", "shorter_max_length"]
