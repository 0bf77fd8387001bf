"""Drift check false alarms and detection (builder.data.drift; issue 19).

False alarm rate at alpha = 0.05 (Bonferroni over the features): the share of unshifted re-samples in which any
feature is flagged, over 20 re-samples of
  * wine: 80 % of the held-out rows (validation + test, never trained on), drawn without replacement;
  * moons: a fresh draw of the generator (another seed, 300 points) against the training split of seed 0.
Detection: each wine feature in turn scaled x3 on the held-out rows; flagged on that feature, and on others?

    python bench/bench_drift.py [--resamples 20] [--alpha 0.05]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from builder.data import load_dataset  # noqa: E402
from builder.data.drift import check_drift, reference_table  # noqa: E402


def _raw(ds, X, names) -> pd.DataFrame:
    X = np.asarray(X, dtype=float)
    if ds.info.input_mean is not None:
        X = X * np.array(ds.info.input_std) + np.array(ds.info.input_mean)
    return pd.DataFrame(X, columns=names)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resamples", type=int, default=20)
    ap.add_argument("--alpha", type=float, default=0.05)
    a = ap.parse_args(argv)

    wine = load_dataset("wine")
    names = list(reference_table(wine)[0].columns)
    held = pd.concat([_raw(wine, wine.val.X, names), _raw(wine, wine.test.X, names)], ignore_index=True)
    alarms = [bool(check_drift(wine, held.sample(frac=0.8, random_state=i), alpha=a.alpha).moved)
              for i in range(a.resamples)]
    print(f"wine: false alarms {sum(alarms)}/{a.resamples} = {np.mean(alarms):.0%} (re-samples of {int(0.8 * len(held))}"
          f" held-out rows vs {len(wine.train)} training rows; alpha {a.alpha} / {len(names)} features)")

    moons = load_dataset("moons", seed=0)
    mnames = list(reference_table(moons)[0].columns)
    alarms = []
    for s in range(1, a.resamples + 1):
        d = load_dataset("moons", seed=s, n_samples=300)
        fresh = _raw(d, np.concatenate([d.train.X, d.val.X, d.test.X]), mnames)
        alarms.append(bool(check_drift(moons, fresh, alpha=a.alpha).moved))
    print(f"moons: false alarms {sum(alarms)}/{a.resamples} = {np.mean(alarms):.0%} (fresh draws of 300 points vs "
          f"{len(moons.train)} training points)")

    hits, others = 0, 0
    for f in names:
        shifted = held.copy()
        shifted[f] *= 3
        moved = check_drift(wine, shifted, alpha=a.alpha).moved
        hits += f in moved
        others += len([m for m in moved if m != f])
    print(f"wine, one feature x3 (each of {len(names)} in turn): flagged {hits}/{len(names)}, other features flagged "
          f"{others} times in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
