"""Drawn objectives on the bundled digits (issue 18): the `gan` and `vae` templates at their default settings.

GAN: after the template's default training, 500 samples on fresh noise are classified by a separately trained
digits classifier (the `cnn` template at its defaults); reported: the share classified with confidence > 0.9,
the classes among those confident samples and among all samples' predictions, and the wall time of training.
VAE: reconstruction MSE (z = μ) and the ELBO (one z sample per image, averaged over 10 draws) on the test
split, in nats per image, and the share of 500 decoded prior samples the classifier recognises (> 0.9).

Run: ``.venv/bin/python bench/bench_generative.py [--threads 2] [--seed 0]``; prints a Markdown block for
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from builder import load_template
from builder.data import fit_dataset, load_dataset
from builder.graph.compile import compile_graph, module_names
from builder.graph.project import Edge, Graph, Node
from builder.training.config import TrainConfig
from builder.training.multi import ObjectiveTrainer
from builder.training.pipeline import build_model, prepare
from builder.training.trainer import Trainer


def classifier(seed: int) -> tuple[torch.nn.Module, float]:
    project, ds, cfg = prepare(load_template("cnn"), "digits", {"seed": seed})
    model = build_model(project.graph, cfg.seed)
    r = Trainer(model, ds, cfg).fit()
    return model.eval(), r.test["accuracy"]


def recognised(clf: torch.nn.Module, images: torch.Tensor) -> tuple[float, list[int], list[int]]:
    with torch.no_grad():
        p = torch.softmax(clf(images.reshape(-1, 1, 8, 8).clamp(0, 1)), -1)
    conf, cls = p.max(-1)
    sure = conf > 0.9
    return float(sure.float().mean()), sorted(set(cls[sure].tolist())), sorted(set(cls.tolist()))


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
    share, sure_classes, all_classes = recognised(clf, samples)
    return {"epochs": r.epochs_completed, "wall_s": wall, "share": share, "sure": sure_classes,
            "all": all_classes, "final_terms": r.final.get("terms")}


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
    share, sure_classes, _ = recognised(clf, samples)
    return {"epochs": r.epochs_completed, "wall_s": wall, "mse": mse, "elbo": elbo, "share": share,
            "sure": sure_classes}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    clf, acc = classifier(a.seed)
    g = gan(a.seed, clf)
    v = vae(a.seed, clf)
    print(f"### Drawn objectives on digits (bench/bench_generative.py, seed {a.seed}, {a.threads} threads, "
          f"{platform.processor() or platform.machine()})\n")
    print(f"- judge: the `cnn` template at its defaults, test accuracy {acc:.3f}")
    print(f"- GAN (`gan` template defaults, {g['epochs']} epochs, {g['wall_s']:.0f} s): {g['share']:.1%} of 500 "
          f"samples classified with confidence > 0.9; classes among them {g['sure']} ({len(g['sure'])}/10); "
          f"classes among all predictions {g['all']}; last epoch's terms {g['final_terms']}")
    print(f"- VAE (`vae` template defaults, {v['epochs']} epochs, {v['wall_s']:.0f} s): test reconstruction MSE "
          f"{v['mse']:.4f} (pixels in [0, 1], z = μ), ELBO {v['elbo']:.2f} nats per image; {v['share']:.1%} of 500 "
          f"prior samples recognised with confidence > 0.9, classes {v['sure']}")


if __name__ == "__main__":
    main()
