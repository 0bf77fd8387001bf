"""Runs page: every run in the workspace; compare curves and settings; open, resume, download, delete, prune,
check new data."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import builder
from app_pages import nav, run_checks, ui
from app_pages.fmt import whole_epoch_ticks
from builder.errors import LayerLabError
from builder.escape import plotly_text, safe_filename
from builder.runs.owners import owner_of
from builder.runs.record import Run, shown_time
from builder.runs.summary import (
    baseline_tags,
    best_loss_text,
    best_metric_text,
    dataset_label,
    has_own_metric,
    legend_labels,
    opened_project,
    run_label,
)
from builder.training.lineage import baseline_line, init_line
from builder.training.metrics_units import metric_in_units, metric_label, metric_text
from builder.training.run_status import RESUMABLE, RunStatus, can_resume, is_live

if ui.shared_runs():  # everyone's runs, with an owner column of pseudonyms
    ui.page_header("Runs", "Everyone's training runs on this server (shared mode; the owner column names each "
                   "person by pseudonym). Select runs to overlay their curves and compare their settings; pause, "
                   "resume or stop the ones of yours in progress.")
else:
    ui.page_header("Runs", "Your training runs. Select runs to overlay their curves and compare their settings; "
                   "pause, resume or stop the ones in progress.")

PALETTE = ["#6366f1", "#f59e0b", "#10b981", "#ef4444", "#0ea5e9", "#a855f7", "#84cc16", "#f97316"]
STATUS_ICON = {RunStatus.FINISHED: "✔ finished", RunStatus.RUNNING: "● running", RunStatus.PAUSED: "‖ paused",
               RunStatus.STOPPED: "■ stopped", RunStatus.FAILED: "✖ failed", RunStatus.INTERRUPTED: "⚠ interrupted",
               RunStatus.QUEUED: "… queued"}  # an imported model shows its plain status


def _best_metric(r: dict) -> str:
    return best_metric_text(r) or "—"  # none for a GAN or VAE: its "metric" is its loss


def _dataset(r: dict) -> str:
    return dataset_label(r)


def _table(runs: list[dict]) -> pd.DataFrame:
    rows = []
    for r in runs:
        test = r.get("test_metrics") or {}
        b = r.get("best") or {}
        rows.append({
            "select": False,
            "run": r["id"],
            **({"owner": ui.owner_label(owner_of(r))} if ui.shared_runs() else {}),
            "project": r.get("name", ""),
            "status": STATUS_ICON.get(r.get("status"), r.get("status")),
            "dataset": _dataset(r),
            "lr": (r.get("config") or {}).get("lr"),
            "batch": (r.get("config") or {}).get("batch_size"),
            "params": r.get("params"),
            "epochs": f"{r.get('epochs_done') or 0}/{(r.get('config') or {}).get('epochs', '?')}",
            "best val loss": best_loss_text(r.get("record") or r, b) or "—",  # a GAN's: "summed 1.86"
            "best val metric": _best_metric(r),
            "test acc / R²": _test_figure(test),
            "duration": ui.fmt_duration(r.get("duration_s")),
            "started": shown_time(r.get("created_at"), seconds=False, missing="—"),
        })
    df = pd.DataFrame(rows)
    df["params"] = pd.to_numeric(df["params"], errors="coerce")
    return df


def _test_figure(test: dict) -> str:
    """The test split's accuracy, else its R², as every page writes it (``97.0%``, ``0.912``; "0.9703" before)."""
    name = "accuracy" if test.get("accuracy") is not None else "r2"
    return metric_text(name, test.get(name))


def overlay(runs: list[dict]) -> None:
    # a GAN's or VAE's "metric" is its loss: such runs draw no second curve, and with only such runs there is
    # no metric chart (it repeated the loss chart)
    metric = [r for r in runs if any(has_own_metric(e.get("metric_name")) for e in r.get("epochs") or [])]
    figs = {"loss": go.Figure(), **({"metric": go.Figure()} if metric else {})}
    names = legend_labels(runs)  # its name and time (the end of its id said nothing), unique
    for i, r in enumerate(runs):
        color = PALETTE[i % len(PALETTE)]
        eps = r.get("epochs") or []
        x = [e.get("epoch") for e in eps]
        rid = plotly_text(names[r["id"]])
        figs["loss"].add_trace(go.Scatter(x=x, y=[e.get("val_loss") for e in eps], name=f"{rid} val",
                                          line=dict(color=color, width=2)))
        figs["loss"].add_trace(go.Scatter(x=x, y=[e.get("train_loss") for e in eps], name=f"{rid} train",
                                          line=dict(color=color, width=1, dash="dot")))
        if r in metric:  # a scaled target's errors in its own units, as the table's best metric
            y = [None if e.get("val_metric") is None else
                 metric_in_units(str(e.get("metric_name")), e["val_metric"], r.get("dataset_info"))[0] for e in eps]
            shown = next((str(e["metric_name"]) for e in eps if e.get("metric_name")), "metric")
            figs["metric"].add_trace(go.Scatter(x=x, y=y, name=f"{rid} val {plotly_text(shown)}",
                                                line=dict(color=color, width=2)))
    named = {str(e.get("metric_name")) for r in metric for e in r.get("epochs") or [] if e.get("metric_name")}
    metric_title = (f"Validation {plotly_text(metric_label(named.pop()))}" if len(named) == 1
                    else "Validation metric (see legend)")
    for (name, fig), col in zip(figs.items(), st.columns(2)):
        fig.update_layout(title=dict(text="Loss (solid: validation, dotted: train)" if name == "loss" else
                                     metric_title, font=dict(size=14)),
                          height=320, margin=dict(l=10, r=10, t=40, b=10), xaxis_title="epoch")
        whole_epoch_ticks(fig)  # a 3-epoch run's axis read 1, 1.5, 2, 2.5, 3 here (Train ticks whole epochs)
        col.plotly_chart(fig, width="stretch", config={"displayModeBar": False}, key=f"ll_cmp_{name}")
    cfgs = {}
    for r in runs:
        c = dict(r.get("config") or {})
        env = r.get("environment") or {}
        count = {k: ui.human_count(int(v)) if isinstance(v, int | float) else v  # as the run's details say
                 for k, v in (("params", r.get("params")), ("trainable params", env.get("trainable")))}
        row = {"dataset": _dataset(r), **count,
               "test accuracy": metric_text("accuracy", (r.get("test_metrics") or {}).get("accuracy")),
               "duration": ui.fmt_duration(r.get("duration_s")), "peak memory": _peak(r)}
        for k in ("finetune", "epochs", "batch_size", "lr", "optimizer", "scheduler", "weight_decay", "early_stopping",
                  "seed", "device"):
            row[k] = c.get(k)
        cfgs[names[r["id"]]] = {k: ui.fmt_setting(v) for k, v in row.items()}  # its column: as in the charts
    df = pd.DataFrame(cfgs)
    differs = df.nunique(axis=1) > 1
    st.markdown("**Settings** (rows that differ are marked ●)")
    df.index = [f"● {i}" if d else i for i, d in zip(df.index, differs)]
    st.dataframe(df, width="stretch")


def _peak(run: dict) -> str | None:
    """The run's peak memory (CUDA max allocated or peak RSS, recorded with each epoch), readable."""
    peak = (run.get("final_metrics") or {}).get("peak_memory")
    return ui.human_bytes(peak) if isinstance(peak, (int, float)) else None


def _open_project(run_id: str) -> None:
    try:
        proj, data = opened_project(ui.store(), run_id)  # another person's run: what a link of it carries
    except LayerLabError as e:
        st.session_state.ll_runs_error = str(e)
        return
    ui.replace_project(proj, f"Opened the project of run {run_id}", data=data, goto=nav.BUILD)
    if not st.session_state.get("ll_pending"):
        st.session_state.ll_goto = nav.BUILD


def _resume(run_id: str) -> None:
    try:
        ui.start_job(None, None, {}, resume_run=run_id)  # a pruned run's job re-installs its mask
    except LayerLabError as e:
        st.session_state.ll_runs_error = f"Cannot resume {run_id}: {e}"
        return
    ui.flash(f"Resuming run {run_id}")


def _control(run_id: str, action: str) -> None:
    try:
        ui.control_job(run_id, action)
    except LayerLabError as e:
        st.session_state.ll_runs_error = str(e)
        return
    ui.flash(f"{action.capitalize()} requested for run {run_id}")


def _delete(run_id: str) -> None:
    try:
        run = ui.get_run(run_id)
        if not ui.can_control(run):
            raise builder.RunStoreError(f"run {run_id} belongs to someone else; it is shown read-only")
        ui.store().delete_run(run_id)
    except LayerLabError as e:
        st.session_state.ll_runs_error = str(e)
        return
    ui.flash(f"Deleted the run {run_label(run)}")  # named as the page lists it, not by its id alone


def model_card(run_id: str) -> str:
    from builder.runs.modelcard import read_model_card  # lazy: heavy (torch)

    return read_model_card(ui.store(), run_id)


def _sequence_views(rs, rec: dict) -> None:
    """What the run makes: a forecaster's forecast vs actual (lookback shaded); a language model's samples per
    epoch; a generator's newest sample grid."""
    from app_pages import generative_view  # lazy: heavy (plotly)
    from builder.training.forecasts import forecast_figure, read_forecasts  # lazy: heavy (torch)
    from builder.training.text_samples import read_text_samples  # lazy: heavy (torch)

    folder = rs.folder(rec["id"])
    kept = read_forecasts(folder.forecasts)
    if kept:
        st.plotly_chart(forecast_figure(kept), width="stretch", config={"displayModeBar": False},
                        key=f"ll_forecast_{rec['id']}")
    generative_view.newest_grid(rs, rec["id"])
    samples = read_text_samples(folder.text_samples)
    if samples:
        with st.expander(f"Text written after each epoch ({len(samples)})", expanded=False):
            for s in samples[-10:]:
                st.markdown(f"*epoch {s['epoch']}* · **{ui.md(' '.join(s['prompt'].split()))}** "
                            f"{ui.md(' '.join(s['text'].split()))}")  # one line each (no Markdown code blocks)


def details(rec: dict) -> None:
    """One run in full: ``rec`` is its table row, ``rec["record"]`` its :class:`~builder.runs.record.Run` (read once
    by the overview; its project parsed at most once for this render)."""
    rs = ui.store()
    rid = rec["id"]
    run = rec.get("record") or ui.get_run(rid)
    st.subheader("Run details")
    st.caption(f"Run `{rid}`")
    c = st.columns(4)
    c[0].metric("Status", str(run.status))
    c[1].metric("Dataset", ui.md(_dataset(run)))
    c[2].metric("Parameters", ui.human_count(int(rec.get("params") or 0)))
    c[3].metric("Duration", ui.fmt_duration(rec.get("duration_s")))
    if run.stopped_by:  # a teacher's, an admin's or a quota's stop
        st.info(f"Stopped by {ui.md(run.stopped_by)}.", icon=":material/stop_circle:")
    if run.info.message and not run.stopped_by:  # (its "stopped by request" line would say it twice)
        st.caption(ui.md(run.info.message))
    if line := baseline_line(baseline_tags(ui.store(), run), run.test_metrics):  # beside its student alone
        st.info(ui.md(line), icon=":material/compare_arrows:")
    if line := init_line(run.environment):  # fine-tuned: which layers came from the source and which started random
        st.caption(ui.md(line))
    _sequence_views(rs, run)
    mine = ui.can_control(run)
    if not mine:
        whose = ui.md(ui.owner_label(run.owner))
        st.caption(f"This run belongs to {whose}: shown read-only (shared mode)." if ui.shared_runs() else
                   f"This run belongs to {whose}: shown read-only (a run for a class you teach).")
    status = run.status
    if is_live(status):
        j = st.columns(4)
        j[0].button("Pause", icon=":material/pause:", on_click=_control, args=(rid, "pause"), width="stretch",
                    disabled=not mine or status != RunStatus.RUNNING, key=f"ll_jpause_{rid}")
        j[1].button("Resume", icon=":material/play_arrow:", on_click=_control, args=(rid, "resume"),
                    width="stretch", disabled=not mine or status != RunStatus.PAUSED, key=f"ll_jresume_{rid}")
        j[2].button("Stop", icon=":material/stop:", on_click=_control, args=(rid, "stop"), width="stretch",
                    disabled=not mine, key=f"ll_jstop_{rid}",
                    help="Stop at the next step; a checkpoint is kept so the run can be resumed")
        j[3].page_link(nav.TRAIN, label="Follow on Train", icon=":material/model_training:")
    network = _network_choice(run)
    cols = st.container(key="ll_run_actions").columns(6)  # style.py: words without icons on a narrow window
    offers_resume = status in RESUMABLE  # a live run's Pause/Resume/Stop row above is its only Resume; a finished
    # run has none (every finished run showed a greyed-out Resume)
    b = cols if offers_resume else [cols[0], None, *cols[1:5]]  # no Resume: the row closes up, no hole
    b[0].button("Open on canvas", icon=":material/account_tree:", on_click=_open_project, args=(rid,),
                width="stretch", key=f"ll_open_{rid}")
    resumable = mine and can_resume(run, has_checkpoint=rs.folder(rid).has_checkpoint)
    if offers_resume:
        b[1].button("Resume", icon=":material/play_arrow:", on_click=_resume, args=(rid,), width="stretch",
                    disabled=not resumable, key=f"ll_resume_{rid}",
                    help="Continue from the last checkpoint, in a job of its own" if resumable else
                    "Only your stopped or interrupted runs with a checkpoint can be resumed")
    b[2].download_button("Model card", data=lambda: model_card(rid),
                         file_name=f"{safe_filename(rid, 'run')}-model-card.md",
                         mime="text/markdown", icon=":material/description:", width="stretch",
                         key=f"ll_card_{rid}", on_click="ignore")
    folder = rs.folder(rid)
    has_weights = folder.has_weights
    stem = safe_filename(f"{rid}-{network}" if network else rid, "run")
    got_w = st.session_state.get("ll_run_netw")
    if not (network and got_w and (got_w["run"], got_w["network"]) == (rid, network)):
        got_w = None
    if got_w and "data" in got_w:
        b[3].download_button(f"Weights ({len(got_w['data']):,} bytes)", data=got_w["data"],
                             file_name=f"{stem}.safetensors", mime="application/octet-stream",
                             icon=":material/download:", width="stretch", key=f"ll_w_dl_{rid}", on_click="ignore")
    elif network:  # built in a worker from the run's weights: a failure is shown, never an empty file
        b[3].button("Weights", icon=":material/deployed_code:", width="stretch", disabled=not has_weights,
                    key=f"ll_w_{rid}", on_click=_network_weights, args=(rid, network),
                    help="This network's weights alone, taken from the run's in a worker process"
                    if has_weights else "Weights are saved when a run finishes")
    else:
        too_big = folder.download_refusal(folder.weights)
        b[3].download_button("Weights", data=lambda: folder.read_weights() or b"",
                             file_name=f"{stem}.safetensors", mime="application/octet-stream",
                             icon=":material/deployed_code:", width="stretch", disabled=not has_weights or bool(too_big),
                             key=f"ll_w_{rid}", on_click="ignore",
                             help=too_big or (None if has_weights else "Weights are saved when a run finishes"))

    def _py() -> str:  # the exporter `layerlab export --run` uses; errors become an escaped comment file
        from builder.interchange import python_source  # lazy: heavy (torch, on first use)

        return _network_py(rid, network) if network else python_source(run.project)

    b[4].download_button("PyTorch .py", data=_py, file_name=f"{stem}.py", mime="text/x-python",
                         icon=":material/code:", width="stretch", key=f"ll_py_{rid}", on_click="ignore")
    with b[5].popover("Delete", icon=":material/delete:", width="stretch", disabled=not mine):
        st.markdown("Delete this run, its checkpoints and weights? This cannot be undone.")
        st.button("Delete permanently", type="primary", on_click=_delete, args=(rid,), key=f"ll_delc_{rid}")
    if got_w and "error" in got_w:
        st.error(ui.error_md(got_w["error"]))
    if folder.tokenizer.is_file():  # a text model reads token ids: its .py or ONNX is of no use without these
        st.download_button("Tokenizer (tokenizer.json)", data=lambda: folder.read_tokenizer() or b"",
                           file_name=f"{stem}.tokenizer.json", mime="application/json", icon=":material/abc:",
                           key=f"ll_tok_{rid}", on_click="ignore",
                           help="The tokenizer this run's token ids come from: tokenizers.Tokenizer.from_file(…) "
                                "turns a sentence into the ids the exported .py or ONNX model reads")
    exchange(rid, has_weights, network, mine=mine)
    run_checks.prune_section(run, _open_project)
    run_checks.drift_section(run)
    test = run.test_metrics
    if test.get("per_class"):
        with st.expander("Per-class test metrics"):
            st.dataframe(pd.DataFrame([{"class": k, **v} for k, v in test["per_class"].items()]),
                         hide_index=True, width="stretch")
    # a JSON tree, whose viewer the page's tables load anyway: st.code's highlighter was 1.5 MB more JavaScript
    # for the browser to evaluate on each first load of the page, for a block shown folded
    with st.expander("Settings (JSON)"):
        st.json(run.get("config") or {})


def _network_choice(run: Run) -> str | None:
    """For a run with a drawn objective: which network the downloads below deliver (None: the whole run)."""
    from builder.interchange.network_export import network_names  # lazy: heavy (torch)

    try:
        names = network_names(run.project)
    except (LayerLabError, ValueError):
        return None
    if not names:
        return None
    pick = st.selectbox("Download", ["whole run", *names], key=f"ll_net_{run.id}",
                        format_func=lambda n: n if n == "whole run" else f"network: {n}",
                        help="The .py, weights and ONNX below: the whole run, or one network on its own (a GAN's "
                        "generator takes the noise; a network's loss terms and targets are left out)")
    return None if pick == "whole run" else pick


def _network_py(rid: str, network: str) -> str:
    """One network of a run as PyTorch source (``layerlab export --run --network``'s exporter); an error becomes
    an escaped comment file."""
    from builder.interchange.network_export import network_downloads  # lazy: heavy (torch)
    from builder.interchange.python_export import failed_export_source  # lazy: heavy (torch)

    try:
        return network_downloads(ui.store().get(rid).project, network, None)["py"]
    except LayerLabError as err:
        return failed_export_source(err)


def _network_weights(rid: str, network: str) -> None:
    """Weights › one network: its safetensors bytes, built from the run's weights in a worker, kept for the
    download that replaces the button; the worker's error goes to the page's error line instead."""
    from builder.interchange.network_export import network_downloads  # lazy: heavy (torch)

    rs = ui.store()
    st.session_state.pop("ll_run_netw", None)
    try:
        data = network_downloads(rs.get(rid).project, network, rs.weights_path(rid))["weights"]
    except LayerLabError as err:
        st.session_state.ll_run_netw = {"run": rid, "network": network, "error": str(err)}
    else:
        st.session_state.ll_run_netw = {"run": rid, "network": network, "data": data}


def exchange(rid: str, has_weights: bool, network: str | None = None, *, mine: bool = True) -> None:
    """Export a run (or one of its networks) as ONNX and quantize it to int8 (size and test metric before/after go
    to the model card). Both run in a worker process. Quantizing writes into the run: ``mine`` (the session
    controls it) or the button is off."""

    from builder.interchange.network_export import network_downloads  # lazy: heavy (torch)
    from builder.interchange.worker import (  # lazy: heavy (sqlalchemy)
        export_onnx_bytes,
        quantize_run_isolated,
    )

    rs = ui.store()
    e = st.columns([1, 1, 4], vertical_alignment="center")
    why = None if has_weights else "Weights are saved when a run finishes"
    why_q = why or (None if mine else "Quantizing writes the int8 file and a model-card section into the run: "
                                      "only its owner does")
    if e[0].button("Export ONNX", icon=":material/output:", key=f"ll_onnx_{rid}", width="stretch",
                   disabled=not has_weights, help=why or "ONNX with a dynamic batch axis, verified with onnxruntime"):
        try:
            with st.spinner("Exporting and verifying…"), tempfile.TemporaryDirectory(prefix="layerlab-") as tmp:
                project, weights = rs.get(rid).project.to_json(), rs.weights_path(rid)
                if network:  # the network's weights come from a worker too: its error is shown, not an empty file
                    files = network_downloads(rs.get(rid).project, network, weights)
                    cut = Path(tmp) / "w.safetensors"
                    cut.write_bytes(files["weights"])
                    project, weights = files["project"], cut
                data, rep = export_onnx_bytes(project, weights)
        except LayerLabError as err:
            ui.show_error(err)
        else:
            st.session_state.ll_run_onnx = {"run": rid, "network": network, "data": data,
                                            "diff": rep["max_abs_diff"]}
    if e[1].button("Quantize int8", icon=":material/compress:", key=f"ll_int8_{rid}", width="stretch",
                   disabled=not has_weights or bool(network) or not mine,
                   help=why_q or "Dynamic int8 ONNX; file size and test metric before/after go to the model card"):
        try:
            ui.check_storage()  # its int8 file joins the run: stored work of this person's
            with st.spinner("Exporting, quantizing and scoring the test split…"):
                st.session_state.ll_run_int8 = quantize_run_isolated(rs, rid)
        except LayerLabError as err:
            ui.show_error(err)
    got = st.session_state.get("ll_run_onnx")
    if got and got["run"] == rid and got.get("network") == network:
        stem = safe_filename(f"{rid}-{network}" if network else rid, "run")
        e[2].download_button(f"Download {stem}.onnx ({len(got['data']):,} bytes; onnxruntime Δ ≤ {got['diff']:.1e})",
                             data=got["data"], file_name=f"{stem}.onnx",
                             mime="application/octet-stream", key=f"ll_onnx_dl_{rid}", on_click="ignore")
    q = st.session_state.get("ll_run_int8")
    if q and q.get("run") == rid:
        st.success(f"int8: {q['bytes_before']:,} → {q['bytes_after']:,} bytes (×{q['ratio']:.2f}); test "
                   f"{ui.md(str(q['metric']))} {q['test_before']:.4f} → {q['test_after']:.4f} (Δ {q['delta']:+.4f}); "
                   f"latency {ui.md(str(q.get('latency_text', 'not measured')))}. Recorded in the model card.")
        data = rs.folder(rid).read_onnx_int8()
        if data is not None:
            st.download_button("Download int8 .onnx", data=data, file_name=f"{safe_filename(rid, 'run')}-int8.onnx",
                               mime="application/octet-stream", key=f"ll_int8_dl_{rid}", on_click="ignore")


if st.session_state.get("ll_goto"):
    st.switch_page(st.session_state.pop("ll_goto"))
if st.session_state.get("ll_runs_error"):
    st.error(ui.error_md(st.session_state.pop("ll_runs_error")))

try:
    rs = ui.store()
    rs.mark_interrupted()
    runs = ui.visible_runs(rs)
except LayerLabError as e:
    ui.show_error(e)
    st.stop()
if (url_run := ui.run_from_url("runs", [r["id"] for r in runs])) is not None:
    st.session_state.ll_run_focus = url_run  # /runs?run=ID (or a unique prefix) opens that run
# a table row per run: its listed record and the overview's extras (``record``: the run read once, in full)
runs = [{**r, **{k: v for k, v in ui.run_summary(rs, r).items() if k not in r or r[k] is None}} for r in runs]
if not runs:
    st.info("No runs yet — train a model on the Train page.", icon=":material/history:")
    st.page_link(nav.TRAIN, label="Go to the Train page", icon=":material/model_training:")
    st.stop()

df = _table(runs)
by_id = {r["id"]: r for r in runs}
focus = st.session_state.get("ll_run_focus")
st.dataframe(
    df.drop(columns=["select"]), hide_index=True, width="stretch", key="ll_runs_table",
    column_config={
        "params": st.column_config.NumberColumn(format="localized"),  # exact (sortable); "17K" beside 17.5k
        "lr": st.column_config.NumberColumn(format="%.4g"),  # a searched rate has 17 digits
        "best val loss": st.column_config.TextColumn(
            help="The lowest validation loss of the run's epochs. 'summed': a GAN's, its networks' losses added; they "
                 "play against each other, so it need not fall and is no score of the samples"),
        "best val metric": st.column_config.TextColumn(
            help="The best epoch's validation metric, named: accuracy, R², perplexity, or an error (MAE, RMSE) in "
                 "the target's own units; '(scaled)': in standard deviations of several targets"),
        "test acc / R²": st.column_config.TextColumn(help="Measured on the test split when a run finishes"),
    })
if focus in by_id and st.session_state.get("ll_runs_focus_seen") != focus:
    st.session_state.ll_runs_focus_seen = focus
    st.session_state.ll_runs_pick = [focus]
elif "ll_runs_pick" in st.session_state:
    st.session_state.ll_runs_pick = [r for r in st.session_state.ll_runs_pick if r in by_id]
else:  # the widget's value lives in the session's state alone (a default beside it: Streamlit's warning)
    # the newest run with something to see: a live one or one with an epoch behind it (a run stopped before its
    # first epoch opened the page on empty charts)
    shown = next((r for r in runs if is_live(r.get("status")) or (r.get("epochs_done") or 0) > 0), runs[0])
    st.session_state.ll_runs_pick = [focus] if focus in by_id else [shown["id"]]
chosen = st.multiselect("Runs to inspect", list(by_id), key="ll_runs_pick",
                        format_func=lambda rid: f"{run_label(by_id[rid])} · {by_id[rid].get('status')}",
                        help="Pick one run to open, resume, download or delete it; several to compare them",
                        placeholder="Pick runs to inspect or compare")
if not chosen:
    st.caption("Pick one run to see its details, or several to compare them.")
elif len(chosen) == 1:
    details(by_id[chosen[0]])
    st.subheader("Curves")
    overlay([by_id[chosen[0]]])
else:
    st.subheader(f"Comparing {len(chosen)} runs")
    overlay([by_id[c] for c in chosen])
    st.caption("Pick a single run to open, resume, download or delete it.")

live_sig = tuple((r["id"], r["status"], r.get("epochs_done")) for r in runs if is_live(r["status"]))
_inline = [True]  # the fragment's first call is inside this page run, which has just read the rows


def _watch() -> None:
    """While jobs run, re-read their rows every 2 s and refresh the page when one changed. Its first call, inline
    in the page's own run, compares nothing: a job that ends an epoch between the two reads would rerun the page
    at once, and a page slower than an epoch would rerun forever."""
    if _inline[0]:
        _inline[0] = False
        return
    try:
        now = tuple((r["id"], r["status"], r.get("epochs_done")) for r in ui.visible_runs(limit=500)
                    if r["id"] in {s[0] for s in live_sig})
    except LayerLabError:
        return
    if now != live_sig:
        st.rerun()


if live_sig:
    st.fragment(run_every=2.0)(_watch)()
