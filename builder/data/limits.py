"""Upload limits (docs/explanation/limits-and-safety.md): every size is checked before the memory it implies is
allocated, from headers (a CSV's first line, an image's header, a zip's central directory) or streaming counts.

Loaders read these as ``limits.NAME`` at call time, so a test (or a deployment) can lower one with
``monkeypatch.setattr(builder.data.limits, "MAX_CSV_BYTES", ...)``.
"""

from __future__ import annotations

MAX_CSV_BYTES = 1 * 2**30  # a CSV file read by its path (streamed in chunks, never held whole)
MAX_CSV_UPLOAD_BYTES = 200 * 2**20  # a CSV handed over as bytes (held in memory while it is read)
MAX_CSV_MEMORY_BYTES = 50 * 2**20  # a CSV parsed in memory (smaller than CACHE_MIN_ROWS rows); larger: the cache
MAX_CSV_ROWS = 1_000_000
MAX_CSV_COLUMNS = 1_000
MAX_CSV_CELLS = 50_000_000  # lines x columns, counted over the bytes before parsing (parsed in chunks of cells)
CACHE_MIN_ROWS = 50_000  # CSVs with at least this many rows are parsed once into the workspace's table cache
MAX_TABLE_BYTES = 2 * 2**30  # rows x encoded features x 4 (float32) of a cached table; also <= free disk
CSV_PREVIEW_BYTES = 8 * 2**20  # the head of a large CSV the Data page's preview reads
CSV_CHUNK_CELLS = 1_000_000  # cells per parsed chunk (pandas holds a chunk's cells as strings: ~60 MB)
MAX_CSV_LINE_BYTES = 2**20
MAX_CATEGORIES = 100  # distinct values of one text column (one-hot encoded)
MAX_FEATURES = 2_000  # encoded feature columns in all (numeric + one-hot)
MAX_FEATURE_CELLS = 20_000_000  # rows x encoded features of a table encoded in memory (float32: 80 MB)
MAX_IMAGE_FILES = 250_000  # images of one folder or zip (issue 20: 200,000 at up to 128x128 must train)
MAX_IMAGE_BYTES = 16 * 2**30  # compressed bytes of all images (files as reported, zip members as declared and read)
MAX_IMAGE_UPLOAD_BYTES = 1 * 2**30  # a zip uploaded as bytes (held in memory while it is read)
MAX_IMAGE_FILE_BYTES = 64 * 2**20  # one image file (as declared in a zip, as reported, as read)
MAX_IMAGE_PIXELS = 16_000_000  # one image's width x height (header), checked before it is decoded
MAX_DECODED_BYTES = 12 * 2**30  # images x channels x height x width bytes (uint8) after resizing; also <= free disk
MAX_DECODE_SECONDS = 3600.0  # one decoding pass into the cache (images: what was decoded is kept); a CSV's parse
CACHE_MIN_IMAGES = 1_000  # folders/zips with at least this many images are decoded into the workspace cache
MAX_FLOAT_BYTES = 2 * 2**30  # one split of a cached image set materialised as float32 (``Split.X``)
MAX_ZIP_ENTRIES = 300_000  # entries of a zip's directory (counted, not as declared); also of one folder
MAX_ZIP_DIRECTORY_BYTES = 32 * 2**20  # a zip's central directory, checked before it is read
MAX_ZIP_RATIO = 100  # declared uncompressed : compressed bytes of one image member or zipped model file (over 1 MiB)
MAX_IMAGE_SIDE = 256
MAX_SAMPLES = 200_000
# text (builder.data.text) and series (builder.data.series): checked before the arrays they imply are allocated
MAX_TEXT_BYTES = 64 * 2**20  # one text upload: a CSV of sentences, a zip of .txt files, a plain-text corpus
MAX_TEXT_FILES = 100_000  # .txt files of one zip or folder (one sample each)
MAX_VOCAB_SIZE = 50_000  # a tokenizer's vocabulary (the Embedding's rows)
MAX_PRETRAINED_VOCAB = 262_144  # a model folder's own tokenizer (the largest common ones: 250k, 256k tokens)
MAX_SEQ_LENGTH = 1_024  # tokens per sample (max_length)
MAX_TOKEN_CELLS = 20_000_000  # samples x max_length token ids (int64: 160 MB)
MAX_TOKENIZER_TRAIN_CHARS = 4 * 2**20  # characters of training text a word/BPE tokenizer learns from (the first)
MAX_SERIES_ROWS = 1_000_000  # time steps of one series
MAX_SERIES_COLUMNS = 64  # numeric columns of one series
MAX_WINDOW_CELLS = 20_000_000  # windows x (lookback + horizon) x columns (float32: 80 MB)

#: the range of each numeric dataset option, by its name (the same meaning wherever a dataset has it): what the
#: loaders refuse outside (builder.data.builtin.option_problems, series.WindowOptions, text.TextOptions) and what
#: the Data page's number boxes allow. A byte-level BPE vocabulary starts at BPE_MIN_VOCAB.
OPTION_RANGES: dict[str, tuple[float, float]] = {
    "n_samples": (20, MAX_SAMPLES), "noise": (0, 5), "centers": (2, 20), "length": (4, 64), "markers": (2, 4),
    "lookback": (1, 4096), "horizon": (1, 1024), "stride": (1, 4096),
    "vocab_size": (4, MAX_VOCAB_SIZE), "max_length": (2, MAX_SEQ_LENGTH),
}
BPE_MIN_VOCAB = 260  # byte-level BPE starts from its 256 bytes
