"""builder.jobs.probe: a person's uploaded image for Try it is decoded in the sandboxed probe child, never in the
server process (issue 28: user content runs only in sandboxed processes). Pillow's decoders are native code; a
file that crashes one must end the child (one error line), not the server everyone shares."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

import builder
from builder.data.access import SYSTEM
from builder.errors import ExplainError
from builder.interpret.session import ExplainSession, open_run
from builder.interpret.tryit import encode_image
from builder.jobs.probe import ModelProbe, ProbeSession
from builder.runs.pipeline import run_training
from builder.runs.store import RunStore

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def crash_on_decode() -> None:
    """Inside the child: decoding an image named crash.png segfaults, as a bug in a native decoder would."""
    import ctypes

    from builder.data import images

    original = images.decode_image

    def decode_image(data, size, channels, name="image"):
        if name == "crash.png":
            ctypes.string_at(0)
        return original(data, size, channels, name)

    images.decode_image = decode_image
    from builder.interpret import tryit

    tryit.decode_image = decode_image


def _png(a: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("ws"), actor=SYSTEM)
    res = run_training(builder.load_template("cnn"), "digits", {"epochs": 1, "seed": 0}, store=store)
    return store, res.run_id


def test_try_it_decodes_an_uploaded_image_in_the_child_and_a_decoder_crash_is_one_line(digits_run, monkeypatch):
    store, rid = digits_run
    png = _png(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)
    local = ExplainSession(*open_run(store, store.get(rid)), "test", rid)
    expected = encode_image(local, png)
    monkeypatch.setattr(ModelProbe, "TEST_HOOK", f"{__name__}:crash_on_decode")
    probe = ModelProbe()
    xs = ProbeSession(probe, store, rid, "test")

    from PIL import Image

    def refuse(*a, **k):
        raise AssertionError("Pillow opened a person's upload in the server process")

    monkeypatch.setattr(Image, "open", refuse)  # the server's Pillow: the child is another process
    x = encode_image(xs, png, name="mine.png")
    assert x.shape == (1, 1, 8, 8) and torch.allclose(x, expected)
    assert torch.allclose(encode_image(xs, png, invert=True), 1 - expected)
    with pytest.raises(ExplainError, match="not an image"):
        encode_image(xs, b"GIF89a not really")
    with pytest.raises(ExplainError, match="SIGSEGV") as err:
        encode_image(xs, png, name="crash.png")
    assert "\n" not in str(err.value)
    assert torch.allclose(encode_image(xs, png), expected)  # a fresh child answers the next one
    probe.close()
