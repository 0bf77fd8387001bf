"""Train › the hyper-parameter form: each setting is the project's as soon as it is typed (autosaved, carried by the
Project file and a share link, kept across a visit to another page); Start training reads them."""

from __future__ import annotations

import json

import streamlit as st

from app_pages import ui
from builder.runs.summary import run_label
from builder.training.config import FEW_STEPS, TrainConfig, steps_per_epoch
from builder.training.objectives import has_objective

OPTIMIZERS = ["adam", "adamw", "sgd", "rmsprop"]
SCHEDULERS = {"none": "Constant", "onecycle": "One-cycle", "cosine": "Cosine", "step": "Step decay",
              "plateau": "Reduce on plateau"}
#: The settings in ``training`` the form sets (its fields, the teacher, a built-in dataset's name): a run started
#: from it replaces these and keeps every other one. It kept a list of others (a drawn objective's networks, the
#: class a member trains for) and dropped the rest: the autoencoder's task (its second run was refused as
#: "multiclass"), the VAE's parts (Explain then attributed the whole VAE), a project file's own settings.
FORM_KEYS = frozenset({"epochs", "batch_size", "lr", "optimizer", "scheduler", "weight_decay", "early_stopping",
                       "seed", "device", "freeze", "finetune", "live_attributions", "teacher", "dataset"})
FORM_BOUNDS = {"epochs": (1, 10_000), "batch_size": (1, 65_536), "lr": (1e-6, 10.0), "weight_decay": (0.0, 1.0),
               "early_stopping": (0, 1000), "seed": (0, 2**31 - 1)}  # the settings form's widgets' ranges
#: Each field's widget key; a value typed there is written into the project's ``training`` at once (:func:`_remember`).
#: The fields lived in an ``st.form`` and reached the project only with Start training: a page trip, a reload, the
#: Project file and a share link all lost what was typed (a teacher's link for "7 epochs at lr 0.02" opened with the
#: defaults, 20 and 0.003).
KEYS = {"epochs": "ll_hp_epochs", "batch_size": "ll_hp_batch_size", "lr": "ll_hp_lr", "optimizer": "ll_hp_optimizer",
        "scheduler": "ll_hp_scheduler", "weight_decay": "ll_hp_weight_decay", "early_stopping": "ll_hp_patience",
        "seed": "ll_hp_seed", "device": "ll_hp_device", "freeze": "ll_hp_freeze", "finetune": "ll_hp_finetune",
        "teacher": "ll_hp_teacher"}
_AS = {"epochs": int, "batch_size": int, "lr": float, "weight_decay": float, "seed": int, "freeze": list,
       "early_stopping": lambda v: int(v) or None}  # 0 is "off", stored as None (as a run stores it)


def kept_settings(training: dict | None) -> dict:
    """The settings of ``training`` that a run started from the form keeps: all but :data:`FORM_KEYS` (a
    template's task and parts, a drawn objective's networks, the class a member trains for
    (:data:`builder.runs.classes.CLASS_KEY`), a fine-tune's starting weights).

    >>> kept_settings({"epochs": 3, "task": "reconstruction", "class": "c1"})
    {'task': 'reconstruction', 'class': 'c1'}
    """
    return {k: v for k, v in (training or {}).items() if k not in FORM_KEYS}


def _seeded(training: dict | None) -> str:
    """What the form's widgets were filled from: the project's own values of the form's fields."""
    return json.dumps({k: (training or {}).get(k) for k in KEYS}, sort_keys=True, default=str)


def _remember(name: str) -> None:
    """The field ``name`` changed: its value becomes the project's setting (saved by the next autosave)."""
    ss = st.session_state
    value = ss.get(KEYS[name])
    value = _AS.get(name, lambda v: v)(value) if value is not None else None
    proj = ui.project()
    training = dict(proj.training or {})
    if name == "teacher" and not value:
        training.pop("teacher", None)
    else:
        training[name] = value
    ss.ll_project = proj.model_copy(update={"training": training})
    ss.ll_hp_seeded = _seeded(training)  # the widgets hold it already: no refill


def _fill_from(training: dict | None) -> None:
    """The widgets show the project's settings: when the project's settings changed elsewhere (a template, a link,
    an opened file, Undo), the widgets' kept values are dropped so that they start from the project's again."""
    ss = st.session_state
    seeded = _seeded(training)
    if ss.get("ll_hp_seeded") != seeded:
        for key in KEYS.values():
            ss.pop(key, None)
        ss.ll_hp_seeded = seeded


def settings_form(task: str, n_train: int, disabled: bool) -> dict | None:
    """The hyper-parameter fields and Start training; the run's settings when Start was pressed, else None."""
    # the form starts where a run would: TrainConfig's defaults for the task < the project's saved settings
    training = ui.project().training
    d, left = TrainConfig.form_values(task, n_train, training, FORM_BOUNDS)
    if left:  # a link's, a file's or a starter's settings of the wrong kind: the form starts from the defaults
        st.warning("The project's " + ", ".join(left) + " cannot be shown here; the form starts from the default "
                   "instead.", icon=":material/warning:")
    _fill_from(training)
    devices = ui.device_options()

    def keep(name: str) -> dict:
        return {"key": KEYS[name], "on_change": _remember, "args": (name,)}

    # Enter in a field never starts a run: only the Start button does.
    with st.container(border=True):
        st.markdown("**Hyper-parameters**")
        c = st.columns(4)
        epochs = c[0].number_input("Epochs", *FORM_BOUNDS["epochs"], int(d["epochs"]), **keep("epochs"),
                                   help="Passes over the training split")
        batch = c[1].number_input("Batch size", *FORM_BOUNDS["batch_size"], int(d["batch_size"]),
                                  **keep("batch_size"), help="Samples per step")
        lr = c[2].number_input("Learning rate", *FORM_BOUNDS["lr"], float(d["lr"]), format="%g", **keep("lr"),
                               help="Step size of the optimizer (peak rate for one-cycle)")
        opt = c[3].selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(d["optimizer"])
                             if d["optimizer"] in OPTIMIZERS else 0, **keep("optimizer"))
        _steps_line(n_train, int(batch), int(epochs))
        c = st.columns(4)
        sched = c[0].selectbox("LR schedule", list(SCHEDULERS), format_func=SCHEDULERS.get,
                               index=list(SCHEDULERS).index(d["scheduler"]) if d["scheduler"] in SCHEDULERS else 0,
                               **keep("scheduler"))
        wd = c[1].number_input("Weight decay", *FORM_BOUNDS["weight_decay"], float(d["weight_decay"]), format="%g",
                               **keep("weight_decay"), help="L2 penalty (decoupled for AdamW)")
        es = c[2].number_input("Early stopping patience", *FORM_BOUNDS["early_stopping"],
                               int(d.get("early_stopping") or 0), **keep("early_stopping"),
                               help="On by default: stop when validation loss has not improved for this many "
                                    "epochs, keeping the best weights (0 = off)")
        seed = c[3].number_input("Seed", *FORM_BOUNDS["seed"], int(d["seed"]), **keep("seed"),
                                 help="Makes runs reproducible")
        values = [v for v, _ in devices]
        c = st.columns([2, 2])
        dev = c[0].selectbox("Device", values, format_func=dict(devices).get,
                             index=values.index(d["device"]) if d["device"] in values else 0, **keep("device"),
                             help="Auto picks the GPU when there is one")
        live = c[1].checkbox("Record attributions live", value=False,
                             help="Attribute 4 fixed validation samples every epoch (Integrated Gradients, 16 steps, "
                                  "a few ms per epoch) and play them back on Explain › Live")
        report, _ = ui.analyse()
        weighted = [nid for nid, n in report.nodes.items() if (n.num_params or 0) > 0]
        frozen = st.multiselect(
            "Freeze layers", weighted, default=[n for n in (d.get("freeze") or []) if n in weighted],
            **keep("freeze"), placeholder="none: every layer trains",
            help="Keep these layers' weights fixed (transfer learning: train only the new head of an imported or "
                 "pretrained model). Same as `layerlab train --freeze`.")
        finetune, teacher = _finetune_inputs(d, keep) if not has_objective(ui.project()) else ("full", None)
        go_ = st.button("Start training", type="primary", icon=":material/play_arrow:", disabled=disabled)
    if not go_:
        return None
    return {"epochs": int(epochs), "batch_size": int(batch), "lr": float(lr), "optimizer": opt, "scheduler": sched,
            "weight_decay": float(wd), "early_stopping": int(es) or None, "seed": int(seed), "device": dev,
            "freeze": list(frozen), "finetune": finetune, "live_attributions": bool(live), "teacher": teacher or None}


def _steps_line(n_train: int, batch: int, epochs: int) -> None:
    """How many optimizer steps the settings make, and a word when they are too few to learn from: a zip of 60
    images at batch 64 for 5 epochs is 5 steps in all, and its run ended at chance with nothing to say why."""
    if n_train < 2:
        return
    per = steps_per_epoch(n_train, batch)
    total = per * epochs
    # the form's batch size as set, and what it becomes when it is larger than the data (the line said "44 samples at
    # batch size 44" beside the form's 64)
    size = f"{batch:,}" if batch <= n_train else f"{batch:,} (one batch of all {n_train:,})"
    line = (f"{n_train:,} training samples at batch size {size}: {per:,} optimizer "
            f"step{'s' if per != 1 else ''} per epoch, {total:,} in all")
    if total < FEW_STEPS:
        st.warning(f"{ui.md(line)}: too few for the model to learn much. Fix: a smaller batch size or more epochs "
                   f"(at least {FEW_STEPS:d} steps)", icon=":material/warning:")
    else:
        st.caption(ui.md(line) + (" (fewer if early stopping ends it)" if epochs > 1 else ""))


def _finetune_inputs(d: dict, keep) -> tuple[str, str | None]:
    """The fine-tuning mode and distillation teacher of a network trained on labels (a canvas that draws its own
    objective, a GAN's or a VAE's losses, has neither: they are not offered there)."""
    modes = {"full": "Full fine-tune: every layer trains", "linear_probe": "Linear probe: only the head trains",
             "lora": "LoRA: the head and LoRA adapters train"}
    finetune = st.radio("Fine-tuning", list(modes), format_func=modes.get, horizontal=True, **keep("finetune"),
                        index=list(modes).index(d.get("finetune", "full")) if d.get("finetune") in modes else 0,
                        help="What trains when starting from a pretrained model: LoRA adds adapters to the "
                             "attention projections when the canvas has no LoRA layer. Same as `layerlab train "
                             "--finetune`.")
    teachers = {r["id"]: run_label(r) for r in ui.store().list_runs("finished", 30)
                if "accuracy" in (r.get("test_metrics") or {})}  # a classifier's run, not a GAN's
    own = (ui.project().training or {}).get("teacher") or ""
    own = own if own in teachers else ""
    teacher = st.selectbox(
        "Teacher run (distillation)", ["", *teachers], index=["", *teachers].index(own),
        format_func=lambda r: teachers.get(r, "none") if r else "none", **keep("teacher"),
        help="Train this network to mimic a finished run's outputs as well as the labels (knowledge "
             "distillation): a DistillationLoss (T = 1, weight 0.5) and a CrossEntropyLoss (0.5) are added to "
             "the canvas, and the student alone (same settings, seed and split, no teacher) trains beside it "
             "as its baseline. Same as `layerlab train STUDENT --teacher RUN_ID`.")
    return finetune, teacher or None
