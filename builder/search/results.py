"""Reading a study: its result, best trial and project, trial table, settings and Optuna's figures.

The readers of the app and the CLI; none of them changes a study.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from builder.errors import LayerLabError
from builder.escape import plotly_text, shown_uri
from builder.graph.project import Project, load_project
from builder.search.space import parse_space
from builder.search.storage import SETTINGS_ATTR, study_display_name


@dataclass
class StudyResult:
    """What :meth:`StudyRunner.run` returns (also the ``layerlab tune --json`` output); ``study`` is its display
    name."""

    study: str
    storage: str
    direction: str
    objective: str
    best_value: float | None
    best_params: dict
    best_run_id: str | None
    best_trial: int | None
    n_trials: int
    states: dict[str, int]
    stopped: bool = False
    pareto: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def study_result(study, storage: str, stopped: bool = False) -> StudyResult:
    """Best value, params and run id of a study plus trial counts."""
    states: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    bt = best_trial(study)
    sig = study.user_attrs.get(SETTINGS_ATTR) or {}
    return StudyResult(study=study_display_name(study.study_name), storage=shown_uri(storage), direction=study.direction.name.lower(),
                       objective=sig.get("objective", ""), best_value=bt.value if bt else None,
                       best_params=dict(bt.params) if bt else {}, best_run_id=bt.user_attrs.get("run_id") if bt else None,
                       best_trial=bt.number if bt else None, n_trials=len(study.trials), states=states, stopped=stopped,
                       pareto=pareto_front(study))


def best_trial(study):
    """The best complete trial, or None when none completed yet."""
    try:
        return study.best_trial
    except ValueError:
        return None


def trials_table(study) -> list[dict]:
    """One row per trial: number, state, value, params, run id, last epoch reported, message, duration."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        dur = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start \
            else None
        rows.append({"trial": t.number, "state": t.state.name.lower(), "value": t.value,
                     "epochs": max(t.intermediate_values) if t.intermediate_values else 0,
                     **{k: (list(v) if isinstance(v, tuple) else v) for k, v in t.params.items()},
                     "parameters": t.user_attrs.get("params"), "macs": t.user_attrs.get("macs"),
                     "run_id": t.user_attrs.get("run_id"), "duration_s": dur,
                     "message": t.user_attrs.get("message", "")})
    return rows


def pareto_front(study, cost: str = "macs") -> list[dict]:
    """The complete trials no other complete trial beats on both the objective and ``cost`` (``macs`` or
    ``params``, recorded per trial), cheapest first: ``{"trial", "value", "macs", "params", "run_id"}``.

    >>> import optuna
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> st = optuna.create_study(direction="maximize")
    >>> for value, macs in [(0.90, 100), (0.95, 400), (0.93, 500), (0.97, 900)]:
    ...     t = st.ask(); t.set_user_attr("macs", macs); t.set_user_attr("params", macs); _ = st.tell(t, value)
    >>> [(p["value"], p["macs"]) for p in pareto_front(st)]
    [(0.9, 100), (0.95, 400), (0.97, 900)]
    """
    sign = 1.0 if study.direction.name.lower() == "maximize" else -1.0
    rows = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE" and t.value is not None
            and isinstance(t.user_attrs.get(cost), int)]
    rows.sort(key=lambda t: (t.user_attrs[cost], -sign * t.value))
    front, best = [], None
    for t in rows:  # cheapest first: keep a trial only when it is better than every cheaper one
        if best is None or sign * t.value > best:
            best = sign * t.value
            front.append({"trial": t.number, "value": t.value, "macs": t.user_attrs.get("macs"),
                          "params": t.user_attrs.get("params"), "run_id": t.user_attrs.get("run_id")})
    return front


def study_settings(study) -> dict:
    """The LayerLab settings a study was created with (space, objective, dataset, config, project)."""
    return dict(study.user_attrs.get(SETTINGS_ATTR) or {})


def best_project(study) -> tuple[Project, dict]:
    """The study's project with the best trial's parameters applied, and its training settings.

    Raises:
        LayerLabError: no trial completed yet.
    """
    bt = best_trial(study)
    if bt is None:
        raise LayerLabError(f"study {study_display_name(study.study_name)!r} has no complete trial yet. Fix: wait for one, or run more trials")
    sig = study_settings(study)
    project = load_project(sig["project"])
    space = parse_space(sig["space"], project)
    p, cfg = space.apply(project, sig.get("config"), bt.params)
    p.training = {**(p.training or {}), **cfg, "dataset": sig.get("dataset")}
    return p, cfg


def study_figures(study) -> dict[str, Any]:
    """Optuna's plotly views: ``history``, ``parallel``, ``importances``, ``intermediate`` (those that can be
    drawn yet; importances need two complete trials and a searched value that varies)."""
    import optuna.visualization as vis  # lazy: heavy (optuna)

    figs: dict[str, Any] = {}
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    makers = {"history": vis.plot_optimization_history, "parallel": vis.plot_parallel_coordinate,
              "intermediate": vis.plot_intermediate_values}
    if len(complete) >= 2:
        makers["importances"] = vis.plot_param_importances
    for k, f in makers.items():
        try:
            figs[k] = _escape_optuna(f(study))
        except (ValueError, RuntimeError, ZeroDivisionError):  # too few trials for this view yet
            continue
    front = pareto_front(study)
    if len(front) > 1:
        figs["pareto"] = pareto_figure(study, front)
    return figs


_EXTRA = "<extra></extra>"


def _escape_optuna(fig):
    """Optuna's figure with the study's own strings escaped: parameter names (``node_id.param``, a node id being
    anyone's text), categorical choices and objective names land in trace names, category values, customdata,
    per-point hovertemplates (``"{name} ({distribution}): {importance}<extra></extra>"``), tick texts and the
    annotations that label the parallel plot's categorical axes. Its scalar hovertemplates are its own templates
    (``%{customdata[0]}: ...``) and stay."""
    def esc(v):
        return plotly_text(v) if isinstance(v, str) else [esc(x) for x in v] if isinstance(v, (list, tuple)) else v

    for tr in fig.data:
        for prop in ("name", "text", "hovertext", "customdata", "x", "y"):
            v = getattr(tr, prop, None)
            if v is not None and (isinstance(v, str) or (isinstance(v, (list, tuple)) and not hasattr(v, "dtype"))):
                tr[prop] = esc(v)
        hover = getattr(tr, "hovertemplate", None)
        if isinstance(hover, (list, tuple)):  # per point: optuna's text holding names, not a template
            tr.hovertemplate = [plotly_text(h.removesuffix(_EXTRA)) + _EXTRA if isinstance(h, str) else h
                                for h in hover]
    for ax in ("xaxis", "yaxis"):
        axis = fig.layout[ax]
        if axis.ticktext is not None:
            axis.ticktext = esc(list(axis.ticktext))
    fig.layout.annotations = [a.update(text=plotly_text(a.text)) if a.text else a for a in fig.layout.annotations]
    return fig


def pareto_figure(study, front: list[dict]):
    """Every complete trial's objective against its multiply-adds, the Pareto front drawn as a step line."""
    import plotly.graph_objects as go  # lazy: heavy (plotly)

    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"
            and isinstance(t.user_attrs.get("macs"), int)]
    objective = (study.user_attrs.get(SETTINGS_ATTR) or {}).get("objective", "value")
    fig = go.Figure()
    fig.add_scatter(x=[t.user_attrs["macs"] for t in done], y=[t.value for t in done], mode="markers",
                    name="trials", text=[f"trial {t.number}" for t in done], marker=dict(color="#94a3b8", size=8))
    fig.add_scatter(x=[p["macs"] for p in front], y=[p["value"] for p in front], mode="lines+markers",
                    line_shape="hv", name="Pareto front", text=[f"trial {p['trial']}" for p in front],
                    marker=dict(color="#4f46e5", size=10))
    fig.update_layout(xaxis_title="multiply-adds per sample", yaxis_title=plotly_text(objective), xaxis_type="log",
                      title="Objective against cost: no trial beats a front trial on both")
    return fig


__all__ = ["StudyResult", "study_result", "best_trial", "trials_table", "pareto_front", "pareto_figure", "study_settings", "best_project",
           "study_figures"]
