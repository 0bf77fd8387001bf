"""Training a drawn objective: several loss terms, several networks and optimizers, an update schedule.

Projects whose graph holds a loss node come here from :func:`builder.runs.pipeline.run_training` (every
other project keeps :class:`~builder.training.trainer.Trainer`). :class:`ObjectiveTrainer` compiles the
*training graph* (:func:`~builder.training.objectives.training_graph`), feeds it per batch (samples, labels,
the input, a teacher's outputs, noise from a generator seeded by (seed, epoch, batch)) and at each step
updates the network the schedule names with the terms that train it; the other networks' weights take no
gradient in that step. It speaks the Trainer's protocol (``fit``, ``pause``/``resume``/``stop``, ``status``,
``listeners``, events), so :class:`~builder.training.trainer.TrainingJob`, the run store and the pages work
unchanged. Step and epoch events carry ``terms`` (each loss term's mean) beside ``loss`` (their weighted sum).

Checkpoints use :func:`~builder.training.checkpoint.save_checkpoint` with every optimizer stored under
``opt.<network>.`` (tensors) and ``state["optimizers"]`` (hyper-parameters); the schedule position is the
global step, the noise is a function of (seed, epoch, batch), so a run killed and resumed from its last
checkpoint ends with the same weights as one never interrupted. A generator's samples on fixed noise are kept
per epoch in the run's ``samples.npz`` (:attr:`~builder.training.run_folder.RunFolder.samples`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from builder._moved import moved_name
from builder.data.disk import atomic_file
from builder.data.splits import Dataset, Split
from builder.errors import TrainingError
from builder.graph.compile import compile_graph
from builder.graph.layers.objective import LOSS_TYPES
from builder.graph.project import Edge, Node, Project
from builder.training.checkpoint import (
    check_optimizer_shapes,
    join_optimizer,
    load_checkpoint,
    match_param_layout,
    save_checkpoint,
    split_optimizer,
)
from builder.training.config import TrainConfig, resolve_device, steps_per_epoch
from builder.training.control import RunControl, call_hook
from builder.training.events import History
from builder.training.nonfinite import Cause, diagnose, nonfinite_message
from builder.training.objectives import (
    ADAM_BETAS,
    Objective,
    output_node,
    resolve_objective,
    training_graph,
)
from builder.training.run_folder import RunFolder
from builder.training.trainer import TrainResult, build_optimizer, end_run

EVAL_CHUNK = 512
SAMPLE_COUNT = 64  # generator samples kept per epoch (fixed noise, so the grid is comparable over epochs)
SAMPLE_GRIDS = 64  # grids kept in samples.npz: every epoch at first, then every 2nd, 4th... epoch and the last
_OUT = "layerlab_out_"  # Output nodes added to the training graph for the prediction and the samples


def _mix(*parts: int) -> int:
    """A 63-bit seed from integers (the per-batch noise seed)."""
    h = 1469598103934665603
    for p in parts:
        h = ((h ^ (p & 0xFFFFFFFFFFFFFFFF)) * 1099511628211) & 0x7FFFFFFFFFFFFFFF
    return h


def sample_node(project: Project, objective: Objective) -> str | None:
    """The node whose output is a generator's sample: the last node of the network a Noise feeds."""
    g = project.graph
    noise = [n.id for n in g.nodes if n.type == "Noise"]
    if not noise:
        return None
    member = {nid: name for name, ids in objective.networks.items() for nid in ids}
    first = next((e.target for e in g.edges if e.source in noise and e.target in member), None)
    if first is None:
        return None
    types = {n.id: n.type for n in g.nodes}
    group = {nid for nid in objective.networks[member[first]] if types.get(nid) not in LOSS_TYPES}
    ends = [nid for nid in objective.networks[member[first]] if nid in group
            and not any(e.source == nid and e.target in group for e in g.edges)]
    return ends[-1] if ends else None


class _Predictor(torch.nn.Module):
    """An objective trainer's network as ``x`` → prediction (:attr:`ObjectiveTrainer.prediction_model`)."""

    def __init__(self, trainer: ObjectiveTrainer):
        super().__init__()
        self.net = trainer.model
        self._trainer = trainer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The prediction node's output for samples ``x``."""
        t = self._trainer
        return t._outputs(t.prediction_feeds(x))[t.prediction]


class ObjectiveTrainer(RunControl):
    """Trains a project's drawn objective on ``dataset`` (see the module docstring).

    Args:
        project: the project (its graph holds loss nodes; ``training`` may name networks, optimizers, schedule).
        dataset: fitted to the graph's Input.
        config: the run's TrainConfig (per-network settings override its optimisation fields).
        teacher: a frozen model whose outputs feed ``Target(source="teacher")`` (distillation).
    """

    def __init__(self, project: Project, dataset: Dataset, config: TrainConfig | dict | None = None,
                 callbacks: Iterable[Any] = (), run_dir: str | Path | None = None, *,
                 on_event: Callable[[dict], None] | Iterable[Callable[[dict], None]] | None = None,
                 resume_from: str | Path | None = None, teacher: torch.nn.Module | None = None):
        self.config = cfg = TrainConfig.from_dict(config)
        if cfg.amp:
            raise TrainingError("mixed precision is not available for drawn objectives yet; received: amp=True. "
                                "Fix: train without --amp")
        if cfg.scheduler != "none":
            raise TrainingError(f"learning-rate schedulers are not available for drawn objectives yet; received: "
                                f"scheduler={cfg.scheduler!r}. Fix: use scheduler 'none'")
        self.project = project
        self.objective = resolve_objective(project)
        if "teacher" in self.objective.feeds.values() and teacher is None:
            raise TrainingError("the objective reads a teacher's outputs (Target source 'teacher') but no teacher "
                                "was given; received: none. Fix: pass --teacher RUN_ID (a finished run)")
        self.device = resolve_device(cfg.device)
        self.prediction = output_node(project)
        self.sample_id = sample_node(project, self.objective)
        graph = training_graph(project.graph)
        for nid in dict.fromkeys([*(t.id for t in self.objective.terms), self.prediction, self.sample_id]):
            if nid is not None:  # every value read becomes an output of its own
                graph.nodes.append(Node(id=_OUT + nid, type="Output"))
                graph.edges.append(Edge(source=nid, target=_OUT + nid))
        torch.manual_seed(cfg.seed)
        self.model = compile_graph(graph).to(self.device)
        self.dataset = dataset.to(self.device)
        self.task = dataset.info.task
        self.teacher = None
        if teacher is not None:
            self.teacher = teacher.to(self.device).eval()
            for p in self.teacher.parameters():
                p.requires_grad_(False)
        self.callbacks = list(callbacks)
        self.run_dir = Path(run_dir) if run_dir else None
        self.listeners = ([] if on_event is None else [on_event] if callable(on_event) else list(on_event))
        self.resume_from = Path(resume_from) if resume_from else None
        self.history = History(cfg.max_step_points)
        self.status, self.epoch, self.global_step = "queued", 0, 0
        self.result: TrainResult | None = None
        self.metric_name = "accuracy" if self.prediction and self.objective.uses_labels else "loss"
        self.precision, self.run_id = "float32", None
        self._init_control()
        self._setup_networks()

    best_epoch = None  # no early stopping on drawn objectives

    # ---- networks and optimizers
    def _setup_networks(self) -> None:
        cfg, obj, names = self.config, self.objective, self.model.layerlab_names
        frozen = set(cfg.freeze)
        self.params: dict[str, list[torch.nn.Parameter]] = {}
        owned: set[str] = set()
        for name, members in obj.networks.items():
            ps = []
            for nid in members:
                if nid in names:
                    owned.add(nid)
                    for p in getattr(self.model, names[nid]).parameters():
                        p.requires_grad_(nid not in frozen)
                        if nid not in frozen:
                            ps.append(p)
            self.params[name] = ps
        orphans = [nid for nid in names if nid not in owned and any(True for _ in getattr(self.model, names[nid])
                                                                      .parameters())]
        if orphans:
            raise TrainingError(f"every node with weights must belong to a network; received: {', '.join(orphans[:5])} "
                                "in none. Fix: add them to one of training.networks")
        for name, _ in obj.schedule:
            if not self.params[name]:
                raise TrainingError(f"network {name!r} has no trainable weights; received: its nodes "
                                    f"{obj.networks[name][:5]}. Fix: add layers with weights or unfreeze them")
        own = {name: {k: v for k, v in obj.settings.get(name, {}).items() if k not in ADAM_BETAS}
               for name in obj.networks}
        self.net_configs = {name: TrainConfig.from_dict(cfg.model_dump(), **own[name]) for name in obj.networks}
        self.optimizers = {}
        for name, _ in obj.schedule:
            if name in self.optimizers or not self.params[name]:
                continue
            opt = build_optimizer(self.params[name], self.net_configs[name])
            st = obj.settings.get(name, {})
            if any(k in st for k in ADAM_BETAS):
                if self.net_configs[name].optimizer not in ("adam", "adamw"):
                    raise TrainingError(f"beta1/beta2 are Adam's settings; received: them for network {name!r} "
                                        f"with optimizer {self.net_configs[name].optimizer!r}. Fix: use adam or "
                                        "adamw, or remove them")
                for group in opt.param_groups:
                    group["betas"] = (float(st.get("beta1", group["betas"][0])),
                                      float(st.get("beta2", group["betas"][1])))
            self.optimizers[name] = opt
        self._all_params = [p for ps in self.params.values() for p in ps]

    def _only(self, network: str) -> None:
        """Let gradients reach ``network``'s weights only (the others are constants this step)."""
        for name, ps in self.params.items():
            flag = name == network
            for p in ps:
                p.requires_grad_(flag)

    # ---- feeds
    def _feeds(self, split: Split, idx: torch.Tensor, xb: torch.Tensor, seed: tuple[int, ...]) -> list[torch.Tensor]:
        """One tensor per placeholder of the training graph, in its order."""
        out, B = [], xb.shape[0]
        for k, nid in enumerate(self.model.layerlab_inputs):
            kind = self.objective.feeds.get(nid, "data")
            if kind == "data":
                out.append(xb)
            elif kind == "labels":
                out.append(split.y[idx].reshape(B, -1))
            elif kind == "input":
                out.append(xb.reshape(B, -1))
            elif kind == "teacher":
                out.append(self._teacher(xb))
            else:  # noise:<distribution>, drawn on the CPU from a seed of (seed, epoch, batch, node)
                gen = torch.Generator().manual_seed(_mix(self.config.seed, *seed, k))
                shape = (B, *self.model.layerlab_input_shapes[nid])
                v = torch.rand(shape, generator=gen) if kind == "noise:uniform" else torch.randn(shape, generator=gen)
                out.append(v.to(self.device))
        return out

    def prediction_feeds(self, xb: torch.Tensor) -> list[torch.Tensor]:
        """The training graph's inputs for samples ``xb`` alone (no split): data as fed in training, labels as
        zeros shaped like the dataset's, a teacher's logits, noise from a fixed seed."""
        B, out = xb.shape[0], []
        y = self.dataset.train.y
        for k, nid in enumerate(self.model.layerlab_inputs):
            kind = self.objective.feeds.get(nid, "data")
            if kind == "data":
                out.append(xb)
            elif kind == "labels":
                out.append(torch.zeros((B, *y[:1].reshape(1, -1).shape[1:]), dtype=y.dtype, device=xb.device))
            elif kind == "input":
                out.append(xb.reshape(B, -1))
            elif kind == "teacher":
                out.append(self._teacher(xb))
            else:
                gen = torch.Generator().manual_seed(_mix(self.config.seed, k))
                shape = (B, *self.model.layerlab_input_shapes[nid])
                v = torch.rand(shape, generator=gen) if kind == "noise:uniform" else torch.randn(shape, generator=gen)
                out.append(v.to(xb.device))
        return out

    def _teacher(self, xb: torch.Tensor) -> torch.Tensor:
        t = self.teacher
        shape = getattr(t, "layerlab_input_shapes", {}).get(next(iter(getattr(t, "layerlab_inputs", [])), None))
        x = xb.reshape(xb.shape[0], *shape) if shape else xb
        with torch.no_grad():
            y = t(x)
        return (y if isinstance(y, torch.Tensor) else y[0]).float()

    def _outputs(self, feeds: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.model(*feeds)
        out = (out,) if isinstance(out, torch.Tensor) else out
        return {k.removeprefix(_OUT): v for k, v in zip(self.model.layerlab_outputs, out, strict=True)}

    @property
    def prediction_model(self) -> torch.nn.Module | None:
        """The trained network as a model of the data's inputs (``x`` → the prediction node's output), for the
        callbacks that call the model on samples (the decision boundary, live attributions): the training graph
        also takes labels, a teacher's logits or noise, fed here as in evaluation (labels as zeros: only the
        prediction is read). None when the objective has no prediction (a GAN's generator)."""
        return None if self.prediction is None else _Predictor(self)

    def _terms(self, outs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {t.id: outs[t.id].float().mean() for t in self.objective.terms}

    def _total(self, terms: dict[str, torch.Tensor], network: str | None = None) -> torch.Tensor:
        chosen = self.objective.terms if network is None else self.objective.terms_for(network)
        return sum((t.weight * terms[t.id] for t in chosen), torch.zeros((), device=self.device))

    # ---- loop
    def _setup(self) -> None:
        cfg, n = self.config, len(self.dataset.train)
        if n < 2:
            raise TrainingError(f"the training split needs at least 2 samples; received: {n}. Fix: more data")
        torch.manual_seed(cfg.seed)
        self._gen = torch.Generator().manual_seed(cfg.seed)
        self.batch_size = min(cfg.batch_size, n)
        self.steps_per_epoch = steps_per_epoch(n, self.batch_size)
        self._epoch_times: list[float] = []
        self._ckpt_t = time.perf_counter()
        try:  # probe once: a model that does not fit the data fails here with a clear message
            split = self.dataset.train.head(2)
            idx = torch.arange(2, device=self.device)
            with torch.no_grad():
                self._outputs(self._feeds(split, idx, split.batch(idx), (0, 0)))
        except Exception as e:
            raise TrainingError(f"the graph cannot process dataset {self.dataset.info.shown_name!r} samples: "
                                f"{str(e).splitlines()[0][:300] if str(e) else type(e).__name__}") from None

    def _loop(self, start_epoch: int, start_batch: int, perm: torch.Tensor | None, acc: dict):
        cfg, ds, obj = self.config, self.dataset, self.objective
        n, B, nb = len(ds.train), self.batch_size, self.steps_per_epoch
        ids = [t.id for t in obj.terms]
        for epoch in range(start_epoch, cfg.epochs):
            self.epoch = epoch
            if perm is None:
                perm = torch.randperm(n, generator=self._gen)
            perm_dev = perm.to(self.device)
            sums = {k: float(acc.get("sums", {}).get(k, 0.0)) for k in [*ids, "total"]}
            count = int(acc.get("count", 0))
            chunk: list[torch.Tensor] = []  # per step: the terms and the total, stacked (read every log_every)
            te, seen = time.perf_counter(), 0
            self.model.train()
            for b in range(start_batch, nb):
                if self._flag or self.global_step == self._stop_at_step:
                    if self.global_step == self._stop_at_step:
                        self._stop_req = True
                    sums, count, chunk = self._fold(chunk, sums, count, ids)
                    self._handle_flag(epoch, b, perm, {"sums": sums, "count": count})
                idx = perm_dev[b * B:(b + 1) * B]
                xb = ds.train.batch(idx)
                network = obj.network_at(self.global_step)
                self._only(network)
                terms = self._terms(self._outputs(self._feeds(ds.train, idx, xb, (epoch, b))))
                loss = self._total(terms, network)
                if self.device.type == "cpu" and not math.isfinite(loss.item()):
                    self._nonfinite(epoch, network, diagnose(self.model))  # checked each step: exact
                opt = self.optimizers[network]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                clip = self.net_configs[network].grad_clip
                if clip:
                    torch.nn.utils.clip_grad_norm_(self.params[network], clip)
                opt.step()
                self.global_step += 1
                seen += len(idx)
                chunk.append(torch.stack([*(terms[k].detach() for k in ids), self._total(terms).detach()]))
                if len(chunk) >= cfg.log_every:
                    sums, count, chunk = self._fold(chunk, sums, count, ids, epoch)
                    if self._interval_due() and b + 1 < nb:  # a timed checkpoint inside the epoch
                        self._save(epoch, b + 1, perm, {"sums": sums, "count": count})
            if chunk:
                sums, count, chunk = self._fold(chunk, sums, count, ids, epoch)
            self._epoch_times.append((time.perf_counter() - te) * nb / max(nb - start_batch, 1))
            start_batch, acc, perm = 0, {}, None
            train = {k: sums[k] / max(count, 1) for k in sums}
            self._end_epoch(epoch, train, seen, time.perf_counter() - te)
            stop_early = self._stop_message is not None
            every = cfg.checkpoint_every
            last = epoch + 1 == cfg.epochs or stop_early
            if (every is None and (last or self._interval_due())) or \
                    (every and ((epoch + 1) % every == 0 or last)):
                self._save(epoch + 1, 0, None, {})
            if stop_early:
                return "finished", self._stop_message
        return "finished", ""

    def _fold(self, chunk: list[torch.Tensor], sums: dict, count: int, ids: list[str],
              epoch: int | None = None) -> tuple[dict, int, list]:
        """Add the pending steps' values to the epoch sums; with ``epoch``, emit a step event of their mean."""
        if not chunk:
            return sums, count, []
        vals = torch.stack(chunk).double().sum(0).tolist()
        k = len(chunk)
        if not math.isfinite(vals[-1]):
            self._nonfinite(epoch or 0, "")
        keys = [*ids, "total"]
        sums = {key: sums[key] + v for key, v in zip(keys, vals, strict=True)}
        if epoch is not None:
            self._emit({"type": "step", "step": self.global_step, "epoch": epoch, "loss": vals[-1] / k,
                        "terms": {key: v / k for key, v in zip(ids, vals, strict=False)}})
        return sums, count + k, []

    def _nonfinite(self, epoch: int, network: str, cause: Cause | None = None) -> None:
        raise TrainingError(nonfinite_message(self.config.lr, epoch, self.global_step, cause,
                                              grad_clip=self.config.grad_clip, network=network))

    @torch.no_grad()
    def evaluate(self, split: Split, tag: int = -1) -> dict[str, float]:
        """Mean of every term, the weighted total (``loss``) and the accuracy of the prediction (when labels are
        fed) on a split; noise drawn from fixed seeds, so the numbers are comparable across epochs. A
        ``Reparameterize`` node samples z = μ + σ·ε here too (ε seeded per split and chunk): a VAE's loss is the
        sampled negative ELBO, not the loss at z = μ. A split elsewhere (the caller's, on the CPU) is copied to the
        trainer's device first."""
        if split.X.device != self.device:
            split = split.to(self.device)
        n = len(split)
        if n == 0:
            return {"loss": float("nan")}
        was = self.model.training
        self.model.eval()
        # the root's flag alone drives Reparameterize (layers keep eval mode: dropout off, batch-norm statistics
        # fixed): a VAE's loss is the sampled negative ELBO the README names, z = μ + σ·ε, not the kinder z = μ
        self.model.training = True
        self._only("")
        ids = [t.id for t in self.objective.terms]
        sums = dict.fromkeys(ids, 0.0)
        correct = 0
        cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        for c, start in enumerate(range(0, n, EVAL_CHUNK)):
            idx = torch.arange(start, min(n, start + EVAL_CHUNK), device=self.device)
            with torch.random.fork_rng(devices=cuda):  # ε from a fixed seed per (split tag, chunk): deterministic
                torch.manual_seed(_mix(self.config.seed, tag, c, 1))
                outs = self._outputs(self._feeds(split, idx, split.batch(idx), (tag, c)))
            for k in ids:
                sums[k] += float(outs[k].double().sum())
            if self.metric_name == "accuracy":
                pred = outs[self.prediction]
                correct += int((pred.argmax(-1) == split.y[idx].reshape(-1)).sum())
        self.model.train(was)
        res = {f"loss/{k}": v / n for k, v in sums.items()}
        res["loss"] = sum(t.weight * res[f"loss/{t.id}"] for t in self.objective.terms)
        if self.metric_name == "accuracy":
            res["accuracy"] = correct / n
        return res

    def _end_epoch(self, epoch: int, train: dict, seen: int, dt: float) -> None:
        ds = self.dataset
        val = self.evaluate(ds.val)
        metric_of = (lambda r: r.get("accuracy", float("nan"))) if self.metric_name == "accuracy" \
            else (lambda r: r.get("loss", float("nan")))
        train_metric = metric_of(self.evaluate(ds.train.head(min(len(ds.train), 512)), tag=-2))
        first = next(iter(self.optimizers.values()))
        mean_t = sum(self._epoch_times[-5:]) / len(self._epoch_times[-5:])
        ids = [t.id for t in self.objective.terms]
        logs = {"epoch": epoch + 1, "train_loss": train["total"], "val_loss": val["loss"],
                "train_metric": train_metric, "val_metric": metric_of(val), "metric_name": self.metric_name,
                "lr": float(first.param_groups[0]["lr"]), "grad_norm": None, "samples_per_s": seen / max(dt, 1e-9),
                "eta_s": mean_t * (self.config.epochs - epoch - 1), "step": self.global_step,
                "terms": {k: train[k] for k in ids}, "val_terms": {k: val.get(f"loss/{k}") for k in ids}}
        extras: dict = {}
        for r in call_hook(self.callbacks, "on_epoch_end", self, epoch, logs):
            if isinstance(r, dict):
                extras.update(r)
        self._emit({"type": "epoch", **logs, **({"extras": extras} if extras else {})})
        self._save_samples(epoch)
        if len(ds.val) and not math.isfinite(val["loss"]):
            self._nonfinite(epoch, "")

    # ---- samples
    @torch.no_grad()
    def samples(self, count: int = SAMPLE_COUNT, seed: int = 12345) -> torch.Tensor | None:
        """A generator's outputs on fixed noise (seed ``seed``), shaped like the dataset's samples; None when the
        project has no Noise-fed network."""
        if self.sample_id is None:
            return None
        split = self.dataset.val if len(self.dataset.val) >= 2 else self.dataset.train
        done, parts = 0, []
        was = self.model.training
        self.model.eval()
        while done < count:
            k = min(count - done, len(split))
            idx = torch.arange(k, device=self.device)
            parts.append(self._outputs(self._feeds(split, idx, split.batch(idx), (seed, done)))[self.sample_id])
            done += k
        self.model.train(was)
        out = torch.cat(parts).float().cpu()
        shape = tuple(self.dataset.info.input_shape)
        return out.reshape(count, *shape) if out[0].numel() == math.prod(shape) else out

    def _save_samples(self, epoch: int) -> None:
        """Add this epoch's grid to ``samples.npz`` (float16, uncompressed: rewritten every epoch). At most
        :data:`SAMPLE_GRIDS` grids are kept: the epochs that are multiples of the smallest power-of-two stride
        that fits, and the latest (a 1000-epoch run keeps every 16th epoch)."""
        if self.run_dir is None or self.sample_id is None:
            return
        path = RunFolder(self.run_dir).samples
        arrays = {}
        if path.is_file():
            with np.load(path) as old:
                arrays = {k: old[k] for k in old.files if int(k.split("_")[1]) <= epoch}
        arrays[f"epoch_{epoch + 1}"] = self.samples().numpy().astype(np.float16)
        if len(arrays) > SAMPLE_GRIDS:
            stride = 1
            while sum(1 for e in range(1, epoch + 2) if e % stride == 0) + 1 > SAMPLE_GRIDS:
                stride *= 2
            arrays = {k: v for k, v in arrays.items()
                      if int(k.split("_")[1]) % stride == 0 or k == f"epoch_{epoch + 1}"}
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path, "the sample grids") as tmp:  # a full disk: one line, the grids before kept
            np.savez(tmp, **arrays)

    # ---- checkpoint
    def _interval_due(self) -> bool:
        """With ``checkpoint_every`` unset: whether ``checkpoint_interval_s`` passed since the last checkpoint."""
        return (self.config.checkpoint_every is None
                and time.perf_counter() - self._ckpt_t >= self.config.checkpoint_interval_s)

    def _save(self, epoch: int, batch: int, perm: torch.Tensor | None, acc: dict) -> None:
        if self.checkpoint_path is None:
            return
        state: dict[str, Any] = {"epoch": epoch, "batch": batch, "global_step": self.global_step, "acc": acc,
                                 "history": self.history.to_state(), "config": self.config.model_dump(),
                                 "epoch_times": self._epoch_times[-20:], "optimizers": {}}
        tensors = {"gen_state": self._gen.get_state()}
        if perm is not None:
            tensors["perm"] = perm
        for name, opt in self.optimizers.items():
            t, m = split_optimizer(opt.state_dict())
            state["optimizers"][name] = m
            tensors.update({f"opt.{name}.{k}": v for k, v in t.items()})
        # the networks take turns (requires_grad toggled per step): every weight is kept, none referred to
        save_checkpoint(self.checkpoint_path, self.model, None, None, state, tensors, refer_frozen=False)
        self._ckpt_t = time.perf_counter()

    def _restore(self) -> tuple[int, int, torch.Tensor | None, dict]:
        state, extra = load_checkpoint(self.resume_from, self.model)
        try:
            saved = state["optimizers"]
            for name, opt in self.optimizers.items():
                prefix = f"opt.{name}."
                opt.load_state_dict(join_optimizer({k[len(prefix):]: v for k, v in extra.items()
                                                     if k.startswith(prefix)}, saved[name]))
                check_optimizer_shapes(opt)
                match_param_layout(opt)
            epoch, batch = int(state["epoch"]), int(state.get("batch", 0))
            if not (0 <= epoch <= 100_000 and 0 <= batch < self.steps_per_epoch):
                raise ValueError(f"epoch {epoch} / batch {batch} out of range")
            self.global_step = int(state.get("global_step", 0))
            self._gen.set_state(extra["gen_state"])
            self.history.load_state(state.get("history", {}))
            self._epoch_times = [float(t) for t in state.get("epoch_times", [])][-20:]
            perm = extra.get("perm")
            n = len(self.dataset.train)
            if perm is not None and (perm.dtype != torch.int64 or perm.shape != (n,)):
                raise ValueError(f"perm must be a permutation of the {n} training samples")
            acc = state.get("acc", {})
            if not isinstance(acc, dict):
                raise TypeError("acc must be a dict")
            return epoch, batch, perm, acc
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as e:
            raise TrainingError(f"checkpoint {self.resume_from} cannot be resumed as a multi-network run "
                                f"({type(e).__name__}: {str(e)[:200]}). Fix: start a new run") from None

    # ---- the end
    def _finish(self, status: str, message: str, t0: float) -> TrainResult:
        test = None
        if status == "finished" and len(self.dataset.test):
            test = {**self.evaluate(self.dataset.test, tag=-3), "n": len(self.dataset.test)}  # as a prediction's
        return end_run(self, status, message, t0, test)


__all__ = ["ObjectiveTrainer", "sample_node", "SAMPLE_COUNT", "SAMPLE_GRIDS"]


def __getattr__(name: str):  # the run drivers moved up to builder.runs.pipeline (builder/_moved.py)
    return moved_name(__name__, name)
