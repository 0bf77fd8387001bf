"""A CIFAR-sized image folder end to end (issue 20): the uint8 cache's first (decode) and second (cached) run.

Generates N synthetic 32x32 PNGs in 10 classes in a temporary folder (stripes, colours and noise per class; a
process pool writes them), then side by side in one run:

* ``layerlab train cnn --dataset image_folder --data-path DIR --adapt --epochs 1`` twice in a fresh workspace:
  whole-process wall time, peak RSS of the process (``wait4``'s ``ru_maxrss``), the epoch's samples/s;
* a plain PyTorch loop over the same files: a torch Dataset decoding each PNG with Pillow per item, a
  DataLoader (batch 64, shuffled, 2 workers), the same compiled CNN, Adam, 1 epoch over the same training
  files: samples/s.

``--repeats`` rounds (each a fresh workspace: first run, second run, the plain loop): times and rates are printed
as the median with its spread (p10-p90; min-max below 5 rounds; bench/results.py), after the conditions line.
Never asserts a time. Prints a Markdown block for bench/RESULTS.md.

    python bench/image_cache.py [--n 60000] [--epochs 1] [--repeats 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results import conditions, spread  # noqa: E402


def _write(args: tuple[str, int, int]) -> None:
    import numpy as np
    from PIL import Image

    folder, lo, hi = args
    for i in range(lo, hi):
        c = i % 10
        rng = np.random.default_rng(i)
        yy, xx = np.mgrid[0:32, 0:32]
        base = ((np.sin((xx * (c % 5 + 1) + yy * (c // 5)) / 3.0) + 1) * 100).astype(np.float32)
        rgb = np.stack([base * (0.5 + 0.05 * c), base * (1.0 - 0.05 * c), np.full_like(base, 25.0 * c)], -1)
        img = np.clip(rgb + rng.normal(0, 25, rgb.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(Path(folder) / f"class{c}" / f"{i}.png")


def make_folder(folder: Path, n: int) -> float:
    """``n`` PNGs in ``folder/class0..class9``; returns the seconds it took."""
    t = time.perf_counter()
    for c in range(10):
        (folder / f"class{c}").mkdir(parents=True, exist_ok=True)
    step = 2000
    with ProcessPoolExecutor(os.cpu_count() or 2) as pool:
        list(pool.map(_write, [(str(folder), lo, min(n, lo + step)) for lo in range(0, n, step)]))
    return time.perf_counter() - t


def cli_run(folder: Path, ws: Path, epochs: int) -> dict:
    """One ``layerlab train`` process: wall seconds, peak RSS (MiB), samples/s of the last epoch."""
    cmd = [sys.executable, "-m", "builder", "train", "cnn", "--dataset", "image_folder", "--data-path", str(folder),
           "--adapt", "--epochs", str(epochs), "--early-stopping", "0", "--workspace", str(ws), "--quiet", "--json"]
    t = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    out, err = p.communicate()
    wall = time.perf_counter() - t
    if p.returncode:
        raise SystemExit(f"layerlab train failed:\n{err[-3000:]}")
    res = json.loads(out[out.index("{"):])
    return {"wall_s": wall, "final": res.get("final", {}), "test": res.get("test") or {}}


def _rss_of_children_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def dataloader_rate(folder: Path, epochs: int) -> float:
    """Samples/s of a plain DataLoader loop (PIL decode per item, 2 workers) training the same CNN."""
    import numpy as np
    import torch
    from PIL import Image

    from builder.runs.pipeline import build_model, prepare

    files = sorted(folder.rglob("*.png"))
    labels = [int(f.parent.name[5:]) for f in files]
    rng = np.random.default_rng(0)
    train = rng.permutation(len(files))[: int(len(files) * 0.7)]

    class Files(torch.utils.data.Dataset):
        def __len__(self):
            return len(train)

        def __getitem__(self, k):
            i = int(train[k])
            with Image.open(files[i]) as im:
                a = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
            return torch.from_numpy(a).permute(2, 0, 1), labels[i]
    from builder.data.splits import Dataset, DatasetInfo, Split
    from builder.graph.templates import load_template

    info = DatasetInfo(name="files", task="multiclass", modality="image", input_shape=(3, 32, 32), num_classes=10,
                       out_size=10, class_names=[str(c) for c in range(10)])
    x = torch.zeros(12, 3, 32, 32)
    y = torch.arange(12) % 10
    project, _, _ = prepare(load_template("cnn"), Dataset(info, Split(x, y), Split(x, y), Split(x, y)), {},
                            adapt=True)
    model = build_model(project.graph, 0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(Files(), batch_size=64, shuffle=True, num_workers=2)
    loss_f = torch.nn.CrossEntropyLoss()
    t, seen = time.perf_counter(), 0
    for _ in range(epochs):
        for xb, yb in loader:
            opt.zero_grad()
            loss_f(model(xb), yb).backward()
            opt.step()
            seen += len(xb)
    return seen / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60_000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="rounds, each in a fresh workspace")
    ap.add_argument("--keep", help="generate into (or reuse) this folder instead of a temporary one")
    a = ap.parse_args()
    conditions(f"Image cache: bench/image_cache.py --n {a.n} --epochs {a.epochs} --repeats {a.repeats}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(a.keep) if a.keep else Path(tmp) / "images"
        gen = make_folder(folder, a.n) if not (folder / "class9").is_dir() else 0.0
        firsts, seconds, plain, rss_first = [], [], [], float("nan")
        for r in range(a.repeats):
            ws = Path(tmp) / f"ws{r}"
            firsts.append(cli_run(folder, ws, a.epochs))
            rss_first = _rss_of_children_mib() if r == 0 else rss_first
            seconds.append(cli_run(folder, ws, a.epochs))
            rss_both = _rss_of_children_mib()
            cache_mib = sum(f.stat().st_size for f in (ws / "cache").rglob("*") if f.is_file()) / 2**20
            plain.append(dataloader_rate(folder, a.epochs))
    host = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    print(f"\n### Image folder of {a.n:,} 32x32 PNGs, 10 classes (bench/image_cache.py; {host})\n")
    print(f"Generating the PNGs: {gen:.0f} s. Cache entry: {cache_mib:.0f} MiB uint8 + labels. {a.repeats} rounds: "
          "median (spread).\n")
    print("| run | whole process s | peak RSS MiB | samples/s (epoch) | test accuracy |")
    print("|---|---|---|---|---|")
    for name, rs, rss in (("first (decode into cache)", firsts, rss_first), ("second (cached)", seconds, rss_both)):
        accs = sorted({round(r["test"].get("accuracy", float("nan")), 3) for r in rs})
        print(f"| `layerlab train cnn --adapt --epochs {a.epochs}`, {name} | "
              f"{spread([r['wall_s'] for r in rs], digits=1)} | {rss:.0f} | "
              f"{spread([r['final'].get('samples_per_s', float('nan')) for r in rs], digits=0)} | "
              f"{', '.join(f'{x:.3f}' for x in accs)} |")
    print(f"| plain DataLoader over the files (Pillow per item, 2 workers), same CNN | | | {spread(plain, digits=0)} | |")
    print("\nPeak RSS is the largest of the `layerlab train` processes so far (RUSAGE_CHILDREN): the first row after "
          "the first round's first run, the second row over every run (a single value each, not a timing).")


if __name__ == "__main__":
    main()
