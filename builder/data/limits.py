"""Upload limits (README "Upload limits"): every size is checked before the memory it implies is allocated,
from headers (a CSV's first line, an image's header, a zip's central directory) or streaming counts.

Loaders read these as ``limits.NAME`` at call time, so a test (or a deployment) can lower one with
``monkeypatch.setattr(builder.data.limits, "MAX_CSV_BYTES", ...)``.
"""

from __future__ import annotations

MAX_CSV_BYTES = 50 * 2**20
MAX_CSV_ROWS = 500_000
MAX_CSV_COLUMNS = 1_000
MAX_CSV_CELLS = 20_000_000  # rows x columns parsed (pandas holds each cell as a number or a string)
MAX_CSV_LINE_BYTES = 2**20
MAX_CATEGORIES = 100  # distinct values of one text column (one-hot encoded)
MAX_FEATURES = 2_000  # encoded feature columns in all (numeric + one-hot)
MAX_FEATURE_CELLS = 20_000_000  # rows x encoded features (built as float64: 160 MB)
MAX_IMAGE_FILES = 20_000
MAX_IMAGE_BYTES = 200 * 2**20  # compressed bytes of all images (zip members as declared and as read)
MAX_IMAGE_FILE_BYTES = 64 * 2**20  # one image file (as declared in a zip, as reported, as read)
MAX_IMAGE_PIXELS = 16_000_000  # one image's width x height (header), checked before it is decoded
MAX_DECODED_BYTES = 256 * 2**20  # images x channels x height x width x 4 bytes after resizing
MAX_ZIP_ENTRIES = 50_000  # entries of a zip's directory (counted, not as declared); also of one folder
MAX_ZIP_DIRECTORY_BYTES = 32 * 2**20  # a zip's central directory, checked before it is read
MAX_ZIP_RATIO = 100  # declared uncompressed : compressed bytes of one image member (over 1 MiB)
MAX_IMAGE_SIDE = 256
MAX_SAMPLES = 200_000
