"""A run that learns from another run tests on that run's split: distillation (``training.teacher``), fine-tuning
and transfer (``init_from``).

A student drawn with another seed would draw another split, so its test set would hold samples its teacher
trained on and its test figures would flatter it. :func:`inherit_split` gives such a run its parent's dataset
options (the split's seed and fractions, and the options that generate the data), so no test sample was ever a
training sample of the model it learns from; options given explicitly that differ from the parent's are refused
with the reason. A parent that trained on another dataset shares no samples: the run keeps its own split. The
returned note goes into the dataset's notes, so the run's model card says which split it used. Example::

    >>> parents({"teacher": "t1"}, {"init_from": None}), parents({}, {"init_from": "a"})
    ([('teacher', 't1')], [('init_from', 'a')])
"""

from __future__ import annotations

from typing import Any

from builder.data import records
from builder.data.text import RunTokenizer
from builder.errors import TrainingError
from builder.training.run_folder import read_text_file

__all__ = ["SPLIT_KEYS", "VIEW_KEYS", "parents", "inherit_split", "inherit_tokenizer", "pretrained_of", "TEXT_SOURCE", "child_options", "BASELINE_TAG", "baseline_tag", "baseline_line", "INIT_KEY", "init_record", "init_line"]

#: the run tag a distilled run keeps its student-alone baseline under: ``{"run": id, "accuracy": ..., ...}``
BASELINE_TAG = "student_alone"

#: the environment key a run that starts from another run's weights records what it took under
INIT_KEY = "init"
INIT_SHOWN = 20  # layers left at their random start that a run records by name (a count says how many in all)

#: the dataset options that decide which rows are test rows (with the options that generate the rows)
SPLIT_KEYS = ("seed", "val_fraction", "test_fraction", "fold", "folds")
#: options that change how a model sees the rows, not which rows there are (a vector model's flattened images)
VIEW_KEYS = ("flatten",)


def parents(training: dict | None, config: Any) -> list[tuple[str, str]]:
    """``(role, run id)`` of every run a run learns from or is compared with: its teacher, the teacher whose split
    a distillation's student-alone baseline shares (``split_of``), the run its weights start from."""
    cfg = config if isinstance(config, dict) else (config.model_dump() if config is not None else {})
    out = []
    for role in ("teacher", "split_of"):
        if (training or {}).get(role):
            out.append((role, str(training[role])))
    if cfg.get("init_from"):
        out.append(("init_from", str(cfg["init_from"])))
    return out


TEXT_SOURCE = "text"  # the dataset name of user text (builder.data.sources' text kind)


def inherit_tokenizer(store: Any, init_from: str | None, dataset: Any, options: dict | None) -> dict:
    """The text source's options with the tokenizer of the run the weights start from: a run that starts from a
    model imported from a folder with a ``tokenizer.json`` (kept in that run's folder) tokenizes its texts with it
    (``tokenizer="pretrained"``, the JSON as ``pretrained``, a :class:`~builder.data.text.RunTokenizer`;
    :func:`builder.data.text.load_text`). Options that
    name another tokenizer (``word``, ``bpe``) are kept; other datasets are left alone.

    >>> inherit_tokenizer(None, None, "text", {"tokenizer": "word"})
    {'tokenizer': 'word'}
    """
    opts = dict(options or {})
    if not init_from or store is None or dataset != TEXT_SOURCE or opts.get("tokenizer") not in (None, "pretrained"):
        return opts
    run = store.get(init_from)  # exact id, a run the store's actor may read (else "no run X of yours")
    text = read_text_file(store.folder(run["id"]).tokenizer)  # bounded: its job wrote it
    if text is not None:
        opts.update(tokenizer="pretrained", pretrained=RunTokenizer(text))
    return opts


def pretrained_of(store: Any, run: Any) -> dict:
    """What reloading a run's text dataset needs besides its recorded options: its own ``tokenizer.json`` when it
    trained with a pretrained tokenizer (``{"pretrained": text}``), else nothing."""
    if (run.get("dataset_options") or {}).get("tokenizer") != "pretrained":
        return {}
    text = read_text_file(store.folder(run["id"]).tokenizer)  # bounded: its job wrote it
    return {"pretrained": RunTokenizer(text)} if text is not None else {}


def child_options(training: dict | None, config: Any, options: dict) -> dict:
    """A page's dataset options for a job: without the split keys when the run learns from another run (the job
    then takes its parent's split, :func:`inherit_split`, instead of the preview's seed being refused).

    >>> child_options({"teacher": "t1"}, {}, {"seed": 0, "test_fraction": 0.15, "flatten": True})
    {'flatten': True}
    >>> child_options({}, {}, {"seed": 0})
    {'seed': 0}
    """
    if not parents(training, config):
        return dict(options)
    return {k: v for k, v in options.items() if k not in SPLIT_KEYS}


def _role(role: str) -> str:
    return {"teacher": "its teacher", "init_from": "the run its weights start from (init_from)",
            "split_of": "the teacher of the distilled run it is the baseline of"}.get(role, role)


def inherit_split(store: Any, learns_from: list[tuple[str, str]], dataset: Any,
                  options: dict | None) -> tuple[dict, str | None]:
    """The dataset options a run loads with, and a note saying which split it uses.

    ``dataset`` is a dataset name (``options`` are the ones given explicitly; the parent's fill the rest) or a
    loaded :class:`~builder.data.Dataset` (its options must already be the parent's).

    Raises:
        TrainingError: no store to read a parent from, or options that would give another split than a parent's.
    """
    opts = dict(options or {})
    if not learns_from:
        return opts, None
    if store is None:
        raise TrainingError(f"a run that learns from run {learns_from[0][1]} needs the run store to read it; "
                            "received: no store. Fix: train through the CLI or the app (they pass the workspace)")
    loaded = not isinstance(dataset, str)
    name = dataset.info.reload_args()[0] if loaded else dataset
    have = dict(dataset.info.options) if loaded else opts
    notes, chosen = [], None  # chosen: (role, run id, its options) whose split this run uses
    for role, pid in learns_from:
        run = store.get(pid)
        p_name, p_opts = run.get("dataset_name"), dict(run.get("dataset_options") or {})
        if p_name != name:
            notes.append(f"own split: {_role(role)}, run {run['id']}, trained on another dataset ({p_name})")
            continue
        keys = SPLIT_KEYS if loaded else sorted((set(have) | set(p_opts)) - set(VIEW_KEYS))
        clash = [f"{k}={have.get(k)!r} (run {run['id']} used {p_opts.get(k)!r})" for k in keys
                 if k in have and have.get(k) != p_opts.get(k)]
        if chosen is not None:
            clash += [f"{k}: run {chosen[1]} used {chosen[2].get(k)!r}, run {run['id']} {p_opts.get(k)!r}"
                      for k in SPLIT_KEYS if chosen[2].get(k) != p_opts.get(k)]
        if clash:
            raise TrainingError(f"a run that learns from run {run['id']} ({_role(role)}) tests on that run's split, "
                                "so that no test sample was a training sample of the model it learns from; received: "
                                f"{'; '.join(clash)}. Fix: leave these dataset options out (the parent's are used), "
                                "or train the parent on the split you want")
        if not loaded:
            opts = {**{k: v for k, v in p_opts.items() if k not in VIEW_KEYS}, **opts}
        chosen = (role, run["id"], p_opts)
    if chosen is not None:
        split = ", ".join(f"{k} {chosen[2][k]}" for k in SPLIT_KEYS if k in chosen[2])
        notes.insert(0, f"split of run {chosen[1]} ({_role(chosen[0])}: {split}), so no test sample was seen "
                        "in training by the model this run learns from")
    return opts, "; ".join(notes)


def baseline_tag(run_id: str | None, test: dict | None) -> dict:
    """The tags a distilled run records its student-alone baseline with (:data:`BASELINE_TAG`): the baseline's
    run id and its numeric test metrics.

    >>> baseline_tag("r1", {"accuracy": 0.9, "per_class": {}})
    {'student_alone': {'run': 'r1', 'accuracy': 0.9}}
    """
    nums = {k: float(n) for k, v in (test or {}).items() if (n := records.number(v, finite=False)) is not None}
    return {BASELINE_TAG: {"run": run_id, **nums}}


def baseline_line(tags: dict | None, test: dict | None = None) -> str | None:
    """One line beside a distilled run's result: the student alone's test figure (and the distilled one's, when
    ``test`` is given); None for a run without a baseline.

    >>> baseline_line({"student_alone": {"run": "r1", "accuracy": 0.908}}, {"accuracy": 0.849})
    'distilled test accuracy 0.849; student alone (same graph, settings, seed and split, no teacher) 0.908 (run r1)'
    """
    base = (tags or {}).get(BASELINE_TAG)
    if not isinstance(base, dict):
        return None
    key = next((k for k in ("accuracy", "r2", "loss") if isinstance(base.get(k), int | float)), None)
    if key is None:
        return None
    mine = (test or {}).get(key)
    head = f"distilled test {key} {mine:.3f}; " if isinstance(mine, int | float) else f"test {key}: "
    return (f"{head}student alone (same graph, settings, seed and split, no teacher) {base[key]:.3f} "
            f"(run {base.get('run')})")


def init_record(source: str, report: dict, *, asked: bool) -> dict:
    """What a run that starts from run ``source``'s weights records (:data:`INIT_KEY` in its environment): how many
    layers it loaded, and which started random and why (:func:`builder.runs.pipeline.transfer_weights`'s report;
    ``asked``: the run named the layers to load, so the others were left out on purpose).

    >>> init_record("r1", {"loaded": ["a", "b"], "skipped": ["head: shapes differ (weight)"], "fresh": ["extra"]},
    ...             asked=False)
    {'from': 'r1', 'loaded': 2, 'random': ['head: shapes differ (weight)', 'extra: not in the source run'], \
'random_count': 2}
    """
    why = "not among the layers to load (init_nodes)" if asked else "not in the source run"
    skipped = [str(s) for s in report.get("skipped") or []] + [f"{n}: {why}" for n in report.get("fresh") or []]
    return {"from": source, "loaded": len(report.get("loaded") or []), "random": skipped[:INIT_SHOWN],
            "random_count": len(skipped)}


def init_line(environment: dict | None) -> str | None:
    """One line saying what a run took from the run its weights start from (its environment's :data:`INIT_KEY`,
    a job's record: each field read as its type); None for a run that started from none.

    >>> init_line({"init": {"from": "r1", "loaded": 4, "random": ["head: shape (3, 8) vs (10, 8)"],
    ...                     "random_count": 1}})
    'Started from run r1: 4 layers loaded; 1 started random: head: shape (3, 8) vs (10, 8)'
    >>> init_line({"init": {"from": "r1", "loaded": 4, "random": [], "random_count": 0}})
    'Started from run r1: all 4 layers with weights loaded'
    >>> init_line({"init": {"from": ["x"], "loaded": "4"}}), init_line({})
    ('Started from run ?: all ? layers with weights loaded', None)
    """
    rec = (environment or {}).get(INIT_KEY)
    if not isinstance(rec, dict):
        return None
    source = records.text(rec.get("from"))
    loaded = records.number(rec.get("loaded"))
    shown = [records.text(r) for r in rec.get("random")][:INIT_SHOWN] if isinstance(rec.get("random"), list) else []
    count = records.number(rec.get("random_count"))
    count = int(count) if isinstance(count, int) and count >= len(shown) else len(shown)
    n = "?" if not isinstance(loaded, int) else f"{loaded:,}"
    layers = "layer" if loaded == 1 else "layers"
    if not count:
        return f"Started from run {source}: all {n} {layers} with weights loaded"
    more = f" (and {count - len(shown):,} more)" if count > len(shown) else ""
    return f"Started from run {source}: {n} {layers} loaded; {count:,} started random: {'; '.join(shown)}{more}"
