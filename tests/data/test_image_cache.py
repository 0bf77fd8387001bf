"""The decoded-image cache (builder.data.cache), uint8 pixel splits, and augmentation per batch (issue 20)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import builder.data.cache as cache
import builder.data.images as images
import builder.data.limits as limits
from builder.data import load_dataset, load_image_folder
from builder.data.access import SYSTEM
from builder.data.augment import Augment, check_augment_input, parse_augment
from builder.data.sources import DatasetSource, LocalFile
from builder.data.splits import PixelSplit
from builder.errors import DatasetError, TrainingError
from builder.training.trainer import Trainer
from tests.fuzz_budget import budget


def _tree(root: Path, n: int = 12, classes: tuple[str, ...] = ("cat", "dog", "owl")) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, c in enumerate(classes):
        (root / c).mkdir(parents=True)
        for i in range(n):
            a = (rng.random((9, 11, 3)) * 100 + 50 * k).astype(np.uint8)
            Image.fromarray(a).save(root / c / f"{i}.png")
    return root


@pytest.fixture
def counted(monkeypatch):
    calls = [0]
    real = images._decode

    def decode(*a):
        calls[0] += 1
        return real(*a)
    monkeypatch.setattr(images, "_decode", decode)
    return calls


def test_second_load_decodes_nothing_and_matches_the_uncached_load(tmp_path, counted):
    root = _tree(tmp_path / "pets")
    seen = []
    load_image_folder(root, size=(8, 8), cache=True, progress=lambda d, t: seen.append((d, t)))
    assert counted[0] == 36 and seen[-1] == (36, 36)
    again = load_image_folder(root, size=(8, 8), cache=True)
    assert counted[0] == 36  # the second run starts without decoding
    plain = load_image_folder(root, size=(8, 8), cache=False)  # decodes in memory
    assert counted[0] == 72
    assert isinstance(again.train, PixelSplit) and isinstance(again.train.pixels, torch.Tensor)
    for name in ("train", "val", "test"):
        a, b = getattr(again, name), getattr(plain, name)
        assert torch.equal(a.X, b.X) and torch.equal(a.y, b.y) and a.X.dtype == torch.float32
    assert again.info.to_dict() == plain.info.to_dict()
    # another size is another entry; a changed file is another entry
    load_image_folder(root, size=(6, 6), cache=True)
    assert counted[0] == 108
    (root / "cat" / "0.png").write_bytes((root / "cat" / "1.png").read_bytes())
    load_image_folder(root, size=(8, 8), cache=True)
    assert counted[0] == 144
    entries = list(cache.cache_dir().glob("images/*"))
    assert len(entries) == 3 and all((e / "meta.json").is_file() for e in entries)


def test_a_killed_decode_is_completed_not_trusted(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "CHUNK", 4)
    labels = list(range(10))
    calls: list[int] = []

    def decode(i):
        calls.append(i)
        if i == 9 and len(calls) < 11:
            raise DatasetError("cut off")  # the last chunk fails the first time (a killed process)
        return np.full((2, 3, 1), i, np.uint8)
    with cache.use_cache_dir(tmp_path), pytest.raises(DatasetError, match="cut off"):
        cache.build_pixel_cache("abc", labels, (2, 3, 1), decode, workers=1)
    assert not cache.cached("abc") and cache.cached_shape("abc") is None
    first = len(calls)
    with cache.use_cache_dir(tmp_path):
        px, lab = cache.build_pixel_cache("abc", labels, (2, 3, 1), decode, workers=1)
    assert sorted(calls[first:]) == [8, 9]  # only the unfinished chunk is decoded again
    assert px[:, 0, 0, 0].tolist() == labels and lab.tolist() == labels
    assert (tmp_path / "cache" / "images" / "abc" / "meta.json").is_file()
    with pytest.raises(DatasetError, match="letters and digits"):
        cache.entry_dir("../x")


def test_limits_are_in_bytes_of_the_compact_form(tmp_path, monkeypatch):
    root = _tree(tmp_path / "pets", n=4)
    monkeypatch.setattr(limits, "MAX_DECODED_BYTES", 12 * 8 * 8 * 3 - 1)
    with pytest.raises(DatasetError, match=r"decoded \(uint8\), over the limit .*MAX_DECODED_BYTES.*Fix: a smaller "
                                           r"size \(at most 7x7"):
        load_image_folder(root, size=(8, 8), cache=True)
    assert not list(cache.cache_dir().glob("images/*/pixels.u8"))  # refused before anything is written
    monkeypatch.setattr(limits, "MAX_IMAGE_FILES", 5)
    with pytest.raises(DatasetError, match="more than 5 images.*MAX_IMAGE_FILES"):
        load_image_folder(root)


def test_default_limits_take_200000_images_of_128x128():
    n = 200_000
    assert n <= limits.MAX_IMAGE_FILES and n <= limits.MAX_ZIP_ENTRIES
    assert n * 128 * 128 * 3 <= limits.MAX_DECODED_BYTES


def test_pixel_splits_batch_move_flatten_and_reconstruct(tmp_path):
    root = _tree(tmp_path / "pets", n=6)
    ds = load_image_folder(root, size=(8, 8), cache=True, task="reconstruction")
    tr = ds.train
    assert tr.y is tr.X and ds.info.out_size == 3 * 8 * 8
    idx = torch.tensor([3, 0, 2])
    assert torch.equal(tr.batch(idx), tr.X[idx])
    assert torch.equal(tr.head(2).X, tr.X[:2])
    moved = ds.to("cpu")
    assert moved.train.pixels is moved.val.pixels  # one shared array
    flat = ds.flattened()
    assert isinstance(flat.train, PixelSplit) and flat.train.batch(idx).shape == (3, 192)
    assert torch.equal(flat.train.batch(idx), tr.X[idx].reshape(3, -1))
    cl = tr.with_channels_last().batch(idx)
    assert cl.is_contiguous(memory_format=torch.channels_last) and torch.equal(cl, tr.X[idx])
    norm = load_image_folder(root, size=(8, 8), cache=True, normalize=True)
    x = norm.train.X
    assert norm.info.options["normalize"] and x.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert (x.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-2


def test_image_folder_through_load_dataset_keeps_its_reload_options(tmp_path):
    root = _tree(tmp_path / "pets", n=6)
    ds = load_dataset("image_folder", path=LocalFile(root), size=[8, 8], seed=3)  # the CLI's --data-path
    assert isinstance(ds.train, PixelSplit)
    name, opts = ds.info.reload_args()
    again = load_dataset(DatasetSource.from_run({"dataset_name": name, "dataset_options": opts}, local=True))
    assert torch.equal(again.train.X, ds.train.X) and torch.equal(again.train.index, ds.train.index)


# ------------------------------------------------------------------------------------------ augmentation
def test_parse_augment():
    assert parse_augment("flip, crop=2,brightness") == {"flip": 1.0, "crop": 2.0, "brightness": 0.2}
    assert parse_augment({"flip": 0}) == {} and parse_augment("") == {}
    with pytest.raises(DatasetError, match="unknown augmentation 'blur'.*Fix"):
        parse_augment("blur")
    with pytest.raises(DatasetError, match="crop must be between 0 and 64; received: 'x'"):
        parse_augment("crop=x")
    with pytest.raises(DatasetError, match="images"):
        check_augment_input({"flip": 1}, (64,), "tabular")


@settings(max_examples=budget(15), deadline=None)
@given(seed=st.integers(0, 2**40), epoch=st.integers(0, 50), batch=st.integers(0, 500))
def test_augmentation_is_a_function_of_seed_epoch_and_batch(seed, epoch, batch):
    x = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    aug = Augment({"flip": 1, "crop": 2, "affine": 10, "brightness": 0.3, "contrast": 0.3}, seed)
    a = aug(x, epoch, batch)
    assert torch.equal(a, Augment(aug.settings, seed)(x, epoch, batch))
    assert a.shape == x.shape and float(a.min()) >= 0 and float(a.max()) <= 1
    assert not torch.equal(a, aug(x, epoch, batch + 1))


def test_flip_and_crop_are_exact_moves():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    f = Augment({"flip": 1}, 0)(x, 0, 0)
    for i in range(2):
        assert torch.equal(f[i], x[i]) or torch.equal(f[i], x[i].flip(-1))
    c = Augment({"crop": 1}, 0, clamp=False)(x, 0, 0)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    for i in range(2):  # each sample is one 4x4 window of its zero-padded image
        assert any(torch.equal(c[i, 0], padded[i, 0, r:r + 4, s:s + 4]) for r in range(3) for s in range(3))


def _cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 8 * 8, 3))


def test_augmented_training_resumes_exactly(tmp_path):
    ds = load_image_folder(_tree(tmp_path / "pets", n=10), size=(8, 8), cache=True)
    cfg = {"epochs": 2, "batch_size": 4, "augment": {"flip": 1, "crop": 2, "contrast": 0.2}, "seed": 5,
           "log_every": 3, "early_stopping": None, "health_every": 0}
    full = Trainer(_cnn(), ds, cfg, run_dir=tmp_path / "a").fit()
    t = Trainer(_cnn(), ds, cfg, run_dir=tmp_path / "b")
    t._stop_at_step = 7  # mid-epoch 2
    assert t.fit().status == "stopped"
    resumed = Trainer(_cnn(), ds, cfg, run_dir=tmp_path / "b", resume_from=t.checkpoint_path).fit()
    keys = ("train_loss", "val_loss", "val_metric")
    assert [[e[k] for k in keys] for e in resumed.history] == [[e[k] for k in keys] for e in full.history]
    plain = Trainer(_cnn(), ds, {**cfg, "augment": {}}, run_dir=tmp_path / "c").fit()
    assert plain.history[-1]["train_loss"] != full.history[-1]["train_loss"]
    flat = ds.flattened()
    with pytest.raises(TrainingError, match="augmentation works on images"):
        Trainer(torch.nn.Linear(192, 3), flat, cfg).fit()


def test_cli_augment_flag_is_recorded_with_the_run_and_the_cache_follows_the_workspace(tmp_path):
    from builder.cli.main import main
    from builder.runs.store import RunStore

    root = _tree(tmp_path / "pets", n=6)
    ws = tmp_path / "other-ws"
    rc = main(["train", "cnn", "--dataset", "image_folder", "--data-path", str(root), "--adapt", "--epochs", "1",
               "--augment", "flip,crop=2", "--workspace", str(ws), "--quiet", "--dataset-option", "cache=true",
               "--dataset-option", "size=[8, 8]"])
    assert rc in (0, None)
    run = RunStore(ws, actor=SYSTEM).list_runs()[0]
    assert run["config"]["augment"] == {"flip": 1.0, "crop": 2.0}
    assert list((ws / "cache" / "images").glob("*/meta.json"))  # the store's workspace, not $LAYERLAB_WORKSPACE


# ------------------------------------------------------------------------------- a cache shared by owners
def _forge_crc(data: bytes, target: int) -> bytes:
    """``data`` plus 4 bytes such that its CRC-32 is ``target`` (CRC-32 is linear: a listing proves nothing)."""
    import zlib

    poly, reg = 0xEDB88320, zlib.crc32(data) ^ 0xFFFFFFFF
    want = target ^ 0xFFFFFFFF
    for _ in range(32):  # run 32 zero-input register steps backwards from the wanted register
        want = (((want ^ poly) << 1) | 1) if want & 0x80000000 else (want << 1)
        want &= 0xFFFFFFFF
    return data + (want ^ reg).to_bytes(4, "little")


def _bmp(value: int) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(buf, format="BMP")
    return buf.getvalue()


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    import zipfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def test_a_zip_with_the_same_listing_and_other_pixels_does_not_poison_the_cache(tmp_path):
    import zipfile
    import zlib

    genuine = {f"{c}/{i}.bmp": _forge_crc(_bmp(40 + 100 * k + 5 * i), 0) for k, c in enumerate(("a", "b"))
               for i in range(6)}
    forged = {n: _forge_crc(_bmp(250 - 20 * j), zlib.crc32(data)) for j, (n, data) in enumerate(genuine.items())}

    def listing(path: Path) -> list:
        return [(i.filename, i.file_size, i.CRC) for i in zipfile.ZipFile(path).infolist()]
    assert listing(_zip(tmp_path / "x" / "g.zip", genuine)) == listing(_zip(tmp_path / "y" / "f.zip", forged))
    poisoned = load_image_folder(tmp_path / "y" / "f.zip", size=(8, 8), cache=True)  # another owner's, first
    mine = load_image_folder(tmp_path / "x" / "g.zip", size=(8, 8), cache=True)
    plain = load_image_folder(tmp_path / "x" / "g.zip", size=(8, 8), cache=False)
    assert torch.equal(mine.train.X, plain.train.X) and not torch.equal(mine.train.X, poisoned.train.X)
    assert len(list(cache.cache_dir().glob("images/*"))) == 2


def test_a_half_written_or_stale_entry_is_rebuilt_never_trusted(tmp_path, counted):
    root = _tree(tmp_path / "pets", n=4)
    first = load_image_folder(root, size=(8, 8), cache=True).train.X.clone()  # a copy: the entry is overwritten
    (entry,) = cache.cache_dir().glob("images/*")
    (entry / "meta.json").unlink()  # as if the process died before the entry was complete
    (entry / "pixels.u8").write_bytes(b"\xff" * (entry / "pixels.u8").stat().st_size)
    n = counted[0]
    again = load_image_folder(root, size=(8, 8), cache=True)
    assert counted[0] == 2 * n and torch.equal(again.train.X, first)
    (entry,) = [e for e in cache.cache_dir().glob("images/*") if not e.name.endswith(".partial")]
    cache.write_json(entry / "meta.json", {"version": cache.CACHE_VERSION - 1, "n": 12, "shape": [8, 8, 3]})
    stale = load_image_folder(root, size=(8, 8), cache=True)  # an entry of an older version: rebuilt
    assert counted[0] == 3 * n and torch.equal(stale.train.X, first)
    assert all((e / "meta.json").is_file() for e in cache.cache_dir().glob("images/*"))


def _built(box: Path, key: str, value: int = 7) -> Path:
    """An entry ``key`` built in a workspace inside ``box``, as the sandboxed decoder leaves it."""
    with cache.use_cache_dir(box / "ws"):
        cache.build_pixel_cache(key, [0, 1, 0], (2, 2, 1), lambda i: np.full((2, 2, 1), value + i, np.uint8))
        return cache.entry_dir(key)


def test_an_entry_built_by_the_decoder_is_taken_only_as_plain_files(tmp_path):
    """The server takes the sandboxed decoder's entry by rename (builder.interchange.worker.decode_images_isolated).
    A decoder that a hostile file took over must not hand the cache another file: a link to the workspace's secret
    or to another owner's cache entry, a second name of one, or a folder link to another entry."""
    other = _built(tmp_path / "other", "b" * 64, value=99)
    secret = tmp_path / "identity.key"
    secret.write_bytes(b"s" * 12)  # 3 x 2 x 2 x 1 bytes: the size of the entry's pixels
    for how in ("symlink", "hardlink", "folder"):
        box = tmp_path / how
        built = _built(box, "a" * 64)
        if how == "symlink":
            (built / "pixels.u8").unlink()
            (built / "pixels.u8").symlink_to(secret)
        elif how == "hardlink":
            (built / "pixels.u8").unlink()
            (built / "pixels.u8").hardlink_to(other / "pixels.u8")
        else:
            import shutil

            shutil.rmtree(built)
            built.symlink_to(other, target_is_directory=True)
        with pytest.raises(DatasetError, match="not usable") as e:
            cache.adopt("a" * 64, built, box)
        assert not cache.cached("a" * 64) and str(tmp_path) not in str(e.value)
    box = tmp_path / "gone"
    with pytest.raises(DatasetError, match="No such file") as e:  # the worker left nothing: no path in the line
        cache.adopt("a" * 64, box / "ws" / "cache" / "images" / ("a" * 64), box)
    assert str(tmp_path) not in str(e.value)
    box = tmp_path / "fine"
    built = _built(box, "a" * 64)
    assert cache.adopt("a" * 64, built, box) == (2, 2, 1)
    px, labels = cache.build_pixel_cache("a" * 64, [0, 1, 0], (2, 2, 1), None)
    assert px[:, 0, 0, 0].tolist() == [7, 8, 9] and labels.tolist() == [0, 1, 0]
    assert not (built / "pixels.u8").exists()  # moved, not copied
