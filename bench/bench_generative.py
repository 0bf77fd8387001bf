"""Drawn objectives on the bundled digits (issue 18): the `gan` and `vae` templates at their default settings.

GAN: after the template's default training, 500 samples on fresh noise are classified by a separately trained
digits classifier (the `cnn` template at its defaults); reported: the share classified with confidence > 0.9,
the classes among those confident samples and among all samples' predictions, and the wall time of training.
VAE: reconstruction MSE (z = μ) and the ELBO (one z sample per image, averaged over 10 draws) on the test
split, in nats per image, and the share of 500 decoded prior samples the classifier recognises (> 0.9).

Distillation: the judge as teacher, a student MLP with under a quarter of its parameters, trained alone and with
distillation (same settings), test accuracy for seeds 0, 1, 2 and the medians.

Run: ``.venv/bin/python bench/bench_generative.py [--threads 2] [--seed 0 | --seeds 0,1,2] [--only gan|vae|distill]``; prints a Markdown block for
bench/RESULTS.md. Distillation options: ``--distill-seeds 0,1,2 --distill-epochs 20,60 --temperature 4 --alpha 0.5
--width 32``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from builder import load_template
from builder.data import fit_dataset, load_dataset
from builder.graph.compile import compile_graph, module_names
from builder.graph.project import Edge, Graph, Node
from builder.runs.pipeline import build_model, prepare
from builder.training.config import TrainConfig
from builder.training.multi import ObjectiveTrainer
from builder.training.trainer import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import conditions, spread  # noqa: E402  (bench/results.py, beside this file)


def classifier(seed: int) -> tuple[torch.nn.Module, float]:
    project, ds, cfg = prepare(load_template("cnn"), "digits", {"seed": seed})
    model = build_model(project.graph, cfg.seed)
    r = Trainer(model, ds, cfg).fit()
    return model.eval(), r.test["accuracy"]


def recognised(clf: torch.nn.Module, images: torch.Tensor) -> tuple[float, list[int], list[int], list[int]]:
    """Share classified with confidence > 0.9, the classes among those, among all, and the confident count per
    class."""
    with torch.no_grad():
        p = torch.softmax(clf(images.reshape(-1, 1, 8, 8).clamp(0, 1)), -1)
    conf, cls = p.max(-1)
    sure = conf > 0.9
    counts = torch.bincount(cls[sure], minlength=p.shape[-1]).tolist()
    return float(sure.float().mean()), sorted(set(cls[sure].tolist())), sorted(set(cls.tolist())), counts


def _trainer(name: str, seed: int) -> ObjectiveTrainer:
    p = load_template(name)
    ds = fit_dataset(p.graph, load_dataset("digits", seed=seed))
    cfg = TrainConfig.resolve(ds.info.task, len(ds.train), p.training, {"seed": seed, "checkpoint_every": 0})
    return ObjectiveTrainer(p, ds, cfg)


def gan(seed: int, clf) -> dict:
    t = _trainer("gan", seed)
    t0 = time.perf_counter()
    r = t.fit()
    wall = time.perf_counter() - t0
    samples = t.samples(500, seed=seed + 999)
    share, sure_classes, all_classes, counts = recognised(clf, samples)
    return {"epochs": r.epochs_completed, "wall_s": wall, "share": share, "sure": sure_classes,
            "all": all_classes, "counts": counts,
            "final_terms": {k: round(v, 3) for k, v in (r.final.get("terms") or {}).items()}}


def _decoder(t: ObjectiveTrainer) -> torch.nn.Module:
    """The VAE's decoder alone (z -> pixels), sharing the trained modules."""
    g = t.project.graph
    nodes = [Node(id="zin", type="Input", params={"shape": [2]})] + \
        [n for n in g.nodes if n.id in ("dec1", "dec_act", "recon_logits")] + [Node(id="pix", type="Sigmoid")]
    edges = [Edge(source="zin", target="dec1"), Edge(source="dec1", target="dec_act"),
             Edge(source="dec_act", target="recon_logits"), Edge(source="recon_logits", target="pix")]
    dec = compile_graph(Graph(nodes=nodes, edges=edges))
    full, sub = t.model.layerlab_names, module_names(Graph(nodes=nodes, edges=edges))
    for nid in ("dec1", "recon_logits"):
        dec.get_submodule(sub[nid]).load_state_dict(t.model.get_submodule(full[nid]).state_dict())
    return dec.eval()


def vae(seed: int, clf) -> dict:
    t = _trainer("vae", seed)
    t0 = time.perf_counter()
    r = t.fit()
    wall = time.perf_counter() - t0
    test = t.dataset.test
    idx = torch.arange(len(test))
    x = test.batch(idx)
    # reconstruction with z = mu: an Output on recon_logits added to the training graph
    g = t.project.graph.model_copy(deep=True)
    g.nodes.append(Node(id="recon_out", type="Sigmoid"))
    g.edges.append(Edge(source="recon_logits", target="recon_out"))
    m = compile_graph(g)
    m.load_state_dict(t.model.state_dict(), strict=False)
    m.eval()
    with torch.no_grad():
        outs = dict(zip(m.layerlab_outputs, m(x), strict=True))
        mse = float(((outs["recon_out"] - x) ** 2).mean())
        t.model.train()
        elbos = []
        for k in range(10):
            o = t._outputs(t._feeds(test, idx, x, (10_000 + k, 0)))
            elbos.append(-(o["recon_loss"] + o["kl_loss"]).mean())
        elbo = float(torch.stack(elbos).mean())
    gen = torch.Generator().manual_seed(seed + 7)
    with torch.no_grad():
        samples = _decoder(t)(torch.randn(500, 2, generator=gen))
    share, sure_classes, _, _ = recognised(clf, samples)
    return {"epochs": r.epochs_completed, "wall_s": wall, "mse": mse, "elbo": elbo, "share": share,
            "sure": sure_classes}


STUDENT = {"format": "layerlab", "version": 1, "name": "student MLP (digits)",
           "graph": {"nodes": [{"id": "image", "type": "Input", "params": {"shape": [1, 8, 8], "modality": "image"}},
                               {"id": "flatten", "type": "Flatten", "params": {}},
                               {"id": "fc1", "type": "Linear", "params": {"out_features": 32}},
                               {"id": "act1", "type": "ReLU", "params": {}},
                               {"id": "head", "type": "Linear", "params": {"out_features": 10}}],
                     "edges": [{"source": "image", "target": "flatten"}, {"source": "flatten", "target": "fc1"},
                               {"source": "fc1", "target": "act1"}, {"source": "act1", "target": "head"}]},
           "training": {"dataset": "digits", "epochs": 20, "lr": 0.003, "batch_size": 64, "optimizer": "adam",
                        "early_stopping": None}}


def student(width: int = 32) -> dict:
    """The student MLP 64-``width``-10 (:data:`STUDENT`)."""
    import copy

    st = copy.deepcopy(STUDENT)
    next(n for n in st["graph"]["nodes"] if n["id"] == "fc1")["params"]["out_features"] = width
    return st


def distill(seeds: tuple[int, ...], epochs: tuple[int, ...] = (20, 60), temperature: float = 4.0,
            alpha: float = 0.5, width: int = 32) -> list[dict]:
    """Per seed: a teacher (the `cnn` template at its defaults, on that seed's split) and the student MLP
    (64-``width``-10) trained alone and with distillation from it (``alpha`` · T² · KL at ``temperature`` +
    (1 − ``alpha``) · cross-entropy), the same settings and no early stopping, for each of ``epochs``; test
    accuracies, medians and means."""
    import statistics

    from builder.training.objectives import add_distillation

    teachers = {seed: classifier(seed) for seed in seeds}
    rows = []
    for ep in epochs:
        st = student(width)
        st["training"]["epochs"] = ep
        alone, taught = [], []
        for seed in seeds:
            project, ds, cfg = prepare(st, "digits", {"seed": seed})
            alone.append(Trainer(build_model(project.graph, seed), ds, cfg).fit().test["accuracy"])
            p = add_distillation(st, temperature=temperature, alpha=alpha)
            dds = fit_dataset(p.graph, load_dataset("digits", seed=seed))
            dcfg = TrainConfig.resolve(dds.info.task, len(dds.train), p.training,
                                       {"seed": seed, "checkpoint_every": 0})
            taught.append(ObjectiveTrainer(p, dds, dcfg, teacher=teachers[seed][0]).fit().test["accuracy"])
        rows.append({"epochs": ep, "teachers": [round(teachers[s][1], 3) for s in seeds],
                     "alone": [round(x, 3) for x in alone], "taught": [round(x, 3) for x in taught],
                     "alone_median": statistics.median(alone), "taught_median": statistics.median(taught),
                     "alone_mean": statistics.mean(alone), "taught_mean": statistics.mean(taught)})
    return rows


def sweep(seeds: tuple[int, ...], settings: list[tuple[float, float]], epochs: int = 20, width: int = 8) -> list[dict]:
    """Distillation defaults (issue 34): per seed one teacher (the `cnn` template at its defaults) and the student
    MLP alone on that teacher's split, then distilled at every ``(T, alpha)``; test accuracy per seed with the
    mean and the min-max spread of (distilled - alone) in points."""
    import statistics

    from builder.training.objectives import add_distillation

    teachers = {seed: classifier(seed) for seed in seeds}
    st = student(width)
    st["training"]["epochs"] = epochs
    alone = []
    for seed in seeds:
        project, ds, cfg = prepare(st, "digits", {"seed": seed})
        alone.append(Trainer(build_model(project.graph, seed), ds, cfg).fit().test["accuracy"])
    rows = [{"T": None, "alpha": None, "acc": alone, "delta": [0.0] * len(seeds)}]
    for t, a in settings:
        acc = []
        for seed in seeds:
            p = add_distillation(st, temperature=t, alpha=a)
            dds = fit_dataset(p.graph, load_dataset("digits", seed=seed))  # the teacher's split (seed)
            dcfg = TrainConfig.resolve(dds.info.task, len(dds.train), p.training, {"seed": seed, "checkpoint_every": 0})
            acc.append(ObjectiveTrainer(p, dds, dcfg, teacher=teachers[seed][0]).fit().test["accuracy"])
        rows.append({"T": t, "alpha": a, "acc": acc, "delta": [100 * (x - y) for x, y in zip(acc, alone)]})
    for r in rows:
        r["mean"] = statistics.mean(r["acc"])
        r["delta_mean"], r["delta_min"], r["delta_max"] = statistics.mean(r["delta"]), min(r["delta"]), max(r["delta"])
    return [{"teachers": [round(teachers[s][1], 3) for s in seeds]}, *rows]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", help="GAN and VAE: several seeds, e.g. 0,1,2 (each judged by its own seed's "
                    "classifier); the wall times are then given as a median with their spread")
    ap.add_argument("--only", choices=("gan", "vae", "distill"), help="one part only")
    ap.add_argument("--distill-seeds", default="0,1,2", help="distillation: seeds (teacher, split, student)")
    ap.add_argument("--distill-epochs", default="20,60", help="distillation: the students' epochs, comma-separated")
    ap.add_argument("--temperature", type=float, default=4.0, help="distillation temperature T")
    ap.add_argument("--alpha", type=float, default=0.5, help="weight of the soft (T²-scaled KL) term")
    ap.add_argument("--width", type=int, default=32, help="the student's hidden units")
    ap.add_argument("--sweep", help="distillation defaults: T:alpha pairs, e.g. 4:0.5,2:0.5,1:0.5,2:0.1 (with "
                    "--distill-seeds, --width, the first of --distill-epochs); prints a table and stops")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.sweep:
        pairs = [(float(x.split(":")[0]), float(x.split(":")[1])) for x in a.sweep.split(",")]
        seeds = tuple(int(x) for x in a.distill_seeds.split(","))
        ep = int(a.distill_epochs.split(",")[0])
        load0, t0 = os.getloadavg()[0], time.perf_counter()
        head, *rows = sweep(seeds, pairs, ep, a.width)
        print(f"student MLP 64-{a.width}-10, {ep} epochs, seeds {a.distill_seeds}, {a.threads} thread(s), teachers' "
              f"test accuracy {head['teachers']}, load {load0:.2f} -> {os.getloadavg()[0]:.2f}, "
              f"{time.perf_counter() - t0:.0f} s\n")
        print("| T | alpha | test accuracy per seed | mean | distilled - alone, points: mean (min to max) |")
        print("| --- | --- | --- | --- | --- |")
        for r in rows:
            name = ("alone", "-") if r["T"] is None else (f"{r['T']:g}", f"{r['alpha']:g}")
            print(f"| {name[0]} | {name[1]} | {', '.join(f'{x:.3f}' for x in r['acc'])} | {r['mean']:.3f} | "
                  f"{r['delta_mean']:+.2f} ({r['delta_min']:+.2f} to {r['delta_max']:+.2f}) |")
        return
    conditions(f"Drawn objectives on digits (bench/bench_generative.py, {a.threads} torch thread(s))")
    print()
    clf, acc = classifier(a.seed)
    print(f"- judge: the `cnn` template at its defaults, test accuracy {acc:.3f}")
    if a.only in (None, "distill"):
        from builder import load_template
        from builder.graph.shapes import infer_shapes

        tp = infer_shapes(load_template("cnn").graph).total_params
        sp = infer_shapes(student(a.width)["graph"]).total_params
        seeds = tuple(int(x) for x in a.distill_seeds.split(","))
        for d in distill(seeds, tuple(int(x) for x in a.distill_epochs.split(",")), a.temperature, a.alpha,
                         a.width):
            print(f"- distillation, student MLP 64-{a.width}-10 ({sp} parameters, {sp / tp:.2f} of the `cnn` "
                  f"teacher's {tp}), {d['epochs']} epochs, no early stopping; teachers' test accuracy {d['teachers']}: "
                  f"student alone {d['alone']} (median {d['alone_median']:.3f}, mean {d['alone_mean']:.3f}), with "
                  f"distillation (T = {a.temperature:g}, alpha = {a.alpha:g}) {d['taught']} (median "
                  f"{d['taught_median']:.3f}, mean {d['taught_mean']:.3f}), seeds {a.distill_seeds}")
    if a.only == "distill":
        return
    seeds = [int(x) for x in a.seeds.split(",")] if a.seeds else [a.seed]
    walls: dict[str, list[float]] = {"gan": [], "vae": []}
    for seed in seeds:  # the objectives seed by seed (interleaved), each judged by its own seed's classifier
        if seed != a.seed:
            clf, acc = classifier(seed)
            print(f"- seed {seed}: judge test accuracy {acc:.3f}")
        if a.only in (None, "gan"):
            g = gan(seed, clf)
            walls["gan"].append(g["wall_s"])
            print(f"- GAN seed {seed} (`gan` template defaults, {g['epochs']} epochs, {g['wall_s']:.1f} s): {g['share']:.1%} "
                  f"of 500 samples classified with confidence > 0.9; classes among them {g['sure']} "
                  f"({len(g['sure'])}/10); confident samples per digit {g['counts']}; classes among all predictions "
                  f"{g['all']}; last epoch's terms {g['final_terms']}", flush=True)
        if a.only in (None, "vae"):
            v = vae(seed, clf)
            walls["vae"].append(v["wall_s"])
            print(f"- VAE seed {seed} (`vae` template defaults, {v['epochs']} epochs, {v['wall_s']:.1f} s): test "
                  f"reconstruction MSE {v['mse']:.4f} (pixels in [0, 1], z = μ), ELBO {v['elbo']:.2f} nats per image; "
                  f"{v['share']:.1%} of 500 prior samples recognised with confidence > 0.9, classes {v['sure']}",
                  flush=True)
    for name, w in walls.items():
        if w:
            print(f"- {name.upper()} training wall time over seeds {','.join(map(str, seeds))}: {spread(w, unit=' s', digits=1)}")
    print(f"- load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
