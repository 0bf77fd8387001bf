"""Server page: what this person keeps on the server (disk usage, quota, delete it all); for an admin (listed by
LAYERLAB_ADMINS or the server config's "admins") every job on the server with Stop, the disk usage of every
owner with Delete, and every study (builder.admin.housekeeping)."""

from __future__ import annotations

import os

import streamlit as st

from app_pages import ui
from builder.admin import housekeeping
from builder.errors import LayerLabError
from builder.jobs import quotas
from builder.runs import owners
from builder.runs.record import shown_time

ui.page_header("Server", "What you keep on this server, and delete it. Admins see every job and every owner's "
               "disk usage here.")


def who(owner: str) -> str:
    """An owner as this page's text names it: the name it chose with its pseudonym, or the pseudonym
    (:func:`builder.runs.owners.label`), never anything of its id (an anonymous id is a key)."""
    return owners.label(ui.workspace(), owner)


def key_of(owner: str) -> str:
    """An owner in element keys: its pseudonym (:func:`builder.runs.owners.pseudonym`)."""
    return owners.pseudonym(ui.workspace(), owner)


def _set_name() -> None:
    try:
        owners.set_display_name(ui.workspace(), ui.owner(), st.session_state.ll_display_name)
    except LayerLabError as e:
        return _error(e)
    st.session_state.ll_server_error = None


def _error(e: LayerLabError) -> None:
    st.session_state.ll_server_error = str(e)


def _delete_mine() -> None:
    try:
        got = housekeeping.delete_owner_data(ui.store(), ui.owner(), ui.owner())
    except LayerLabError as e:
        return _error(e)
    st.session_state.ll_server_error = None
    kept = f"; {len(got['kept'])} live job(s) kept: stop them first" if got["kept"] else ""
    ui.flash(f"Deleted {got['runs']} run(s), your saved project and uploads{kept}")


def _stop(run_id: str) -> None:
    try:
        housekeeping.stop_job(ui.store(), run_id, ui.owner())
    except LayerLabError as e:
        return _error(e)
    ui.flash(f"Asked run {run_id} to stop")


def _delete_owner(target: str) -> None:
    try:
        got = housekeeping.delete_owner_data(ui.store(), ui.owner(), target)
    except LayerLabError as e:
        return _error(e)
    kept = f"; {len(got['kept'])} live job(s) kept" if got["kept"] else ""
    ui.flash(f"Deleted {got['runs']} run(s) and the files of {who(target)}{kept}")


def my_data() -> None:
    """This person's bytes (runs, projects and uploads) and a confirmed Delete of all of it."""
    store = ui.store()
    use = housekeeping.owner_usage(store, ui.owner())
    st.subheader("Your data")
    c = st.columns([1, 1])
    c[0].markdown(f"Your id on this server: `{key_of(ui.owner())}`",
                  help="What an admin writes in LAYERLAB_TEACHERS or LAYERLAB_ADMINS (or the server config's "
                  "teachers/admins) to make you a teacher or an admin. It names you without revealing your "
                  "browser's key, so it is safe to share.")
    if "ll_display_name" not in st.session_state:
        st.session_state.ll_display_name = owners.display_name(ui.workspace(), ui.owner()) or ""
    c[1].text_input("Display name", key="ll_display_name", on_change=_set_name,
                    max_chars=owners.DISPLAY_NAME_MAX, placeholder="e.g. Ann B.",
                    help="What admins and teachers see next to your id (optional)")
    c = st.columns(3)
    c[0].metric("Runs", f"{use['n_runs']}", help="Your training runs on this server")
    c[1].metric("Run files", ui.human_bytes(use["runs"]), help="Checkpoints, weights, curves and logs")
    c[2].metric("Projects and uploads", ui.human_bytes(use["projects"]),
                help="Your autosaved canvas, its undo history and the data files you uploaded")
    _my_limits(store)
    with st.popover("Delete all my data", icon=":material/delete_forever:"):
        st.markdown("Deletes **every run** of yours, your saved canvas, its undo history and your uploads. "
                    "A job that is still running is kept: stop it first.")
        st.button("Delete permanently", type="primary", key="ll_server_delete_mine", on_click=_delete_mine)


def _my_limits(store) -> None:
    """This person's quotas where any is set (builder.jobs.quotas): storage in use of its limit as a bar, then
    jobs and GPU time, each with what is in use now and who set it."""
    limit, where = quotas.limit_sources(ui.workspace(), ui.owner())
    if all(v is None for v in limit.values()):
        return
    used = quotas.usage(store, ui.owner(), gpu=limit.get("gpu_seconds") is not None)

    def by(key: str) -> str:
        return f" (set by {where[key]})" if key in where else ""

    if (cap := limit.get("storage_mb")) is not None:
        st.progress(min(1.0, used["storage_mb"] / cap), text=f"Storage: {used['storage_mb']:.1f} of {cap:g} MiB "
                    f"in use{by('storage_mb')}. Runs, their curves, uploads, projects and searches count")
    lines = []
    run_cap, queue_cap = limit.get("running"), limit.get("queued")
    if run_cap is not None or queue_cap is not None:
        caps = [f"{run_cap:g} running" if run_cap is not None else "", f"{queue_cap:g} waiting"
                if queue_cap is not None else ""]
        lines.append(f"Jobs: at most {' and '.join(c for c in caps if c)}{by('running') or by('queued')}; now "
                     f"{used['running']:g} running, {used['queued']:g} waiting")
    if (gpu := limit.get("gpu_seconds")) is not None:
        lines.append(f"GPU time: {used['gpu_seconds']:.0f} of {gpu:g} GPU-seconds used in the last 24 hours"
                     f"{by('gpu_seconds')}")
    if lines:
        st.caption("  \n".join(lines))


def _set_library() -> None:
    from builder.interchange.hf_library import set_library_folder  # lazy: heavy (sqlalchemy)

    try:
        set_library_folder(ui.workspace(), ui.owner(), st.session_state.ll_model_library)
    except LayerLabError as e:
        return _error(e)
    st.session_state.ll_server_error = None
    ui.flash("Model library saved")


def library_view() -> None:
    """The model library's folder (admins set it) and its models with their size (Hugging Face model folders)."""
    from builder.interchange.hf_library import (  # lazy: heavy (sqlalchemy)
        LIBRARY_ENV,
        library_entries,
        library_folder,
    )

    st.subheader("Model library")
    current = library_folder(ui.workspace())
    if "ll_model_library" not in st.session_state:
        st.session_state.ll_model_library = str(current or "")
    st.text_input("Model library folder", key="ll_model_library", on_change=_set_library,
                  disabled=bool(os.environ.get(LIBRARY_ENV)),
                  help=f"A folder on the server holding Hugging Face model folders (config.json + model.safetensors); "
                  f"listed here with their size and imported by name (`layerlab import`). {LIBRARY_ENV} overrides it.")
    for e in library_entries(ui.workspace()):
        if e["problem"]:
            st.caption(f"{ui.md(e['name'])}: {ui.md(e['problem'])}")
        else:
            st.caption(f"**{ui.md(e['name'])}** · {ui.md(e['architecture'])} · {e['params']:,} parameters · "
                       f"{e['macs']:,} multiply-adds per sample · training {e['memory_text']} at batch 32")


def _set_database() -> None:
    from builder.runs.db import set_database_url  # lazy: heavy (sqlalchemy)

    try:
        note = set_database_url(ui.workspace(), ui.actor(), st.session_state.ll_database_url)
    except LayerLabError as e:
        return _error(e)
    st.session_state.ll_server_error = None
    st.session_state.ll_database_url = ""  # the password is not kept in the page
    ui.flash(note)


def database_view() -> None:
    """The run database in use (never its password) and the server config's setting, which an admin changes; it
    takes effect when the server restarts (builder.runs.db.set_database_url)."""
    from builder.runs.db import ENV_DB_URL, database_setting  # lazy: heavy (sqlalchemy)

    st.subheader("Run database")
    now = database_setting(ui.workspace())
    st.markdown(f"In use: `{now['in_use'].replace('`', '')}` (from {now['source']})")
    if now["restart"]:
        st.info(f"The server config names `{(now['configured'] or 'the workspace SQLite file').replace('`', '')}`: "
                "it takes effect when the server restarts.", icon=":material/restart_alt:")
    with st.form("ll_database_form", border=False):
        st.text_input("Database URL", key="ll_database_url", type="password", disabled=now["overridden"],
                      placeholder="postgresql+psycopg://layerlab:password@db.school.org/layerlab",
                      help=f"PostgreSQL shared by several LayerLab servers (docs/scale-out.md), or sqlite:////path. "
                      f"Empty: the workspace's own SQLite file. Saved in the server config; takes effect when the "
                      f"server restarts. {ENV_DB_URL} overrides it.")
        st.form_submit_button("Save database URL", on_click=_set_database, disabled=now["overridden"])


def admin_view() -> None:
    """Every job on the server (owner, status, device, age, Stop) and every owner's disk usage (Delete)."""
    store = ui.store()
    st.subheader("Every job on the server")
    jobs = housekeeping.server_jobs(store)
    if not jobs:
        st.caption("No job is queued, running or paused.")
    for j in jobs:
        with st.container(border=True, key=f"ll_admin_job_{j['id']}"):
            c = st.columns([2, 2, 1.2, 1, 1, 1])
            c[0].markdown(f"**{ui.md(j['name'] or 'run')}**  \n`{j['id']}`")
            c[1].markdown(ui.md(who(j["owner"])))
            where = f" (#{j['position']} in queue)" if j["position"] else f", {j['epochs']} ep"
            c[2].markdown(f"{j['status']}{where}")
            c[3].markdown(f"`{j['device'].replace('`', '')[:20]}`")
            c[4].markdown(ui.fmt_duration(j["age_s"]))
            c[5].button("Stop", key=f"ll_admin_stop_{j['id']}", on_click=_stop, args=(j["id"],),
                        icon=":material/stop:")
    st.subheader("Disk usage")
    use = housekeeping.workspace_usage(store)
    c = st.columns(5)
    c[0].metric("Workspace", ui.human_bytes(use["total"]))
    c[1].metric("Dataset cache", ui.human_bytes(use["cache"]), help="Decoded images, shared by everyone")
    c[2].metric("Studies", ui.human_bytes(use["studies"]))
    c[3].metric("Run database", ui.human_bytes(use["database"]))
    c[4].metric("Other", ui.human_bytes(use["other"]), help="Launcher files, folders of unknown owners")
    rows = housekeeping.admin_owners(store)
    if not rows:
        st.caption("Nobody keeps anything yet.")
    for r in rows:
        with st.container(border=True, key=f"ll_admin_owner_{key_of(r['owner'])}"):
            c = st.columns([2.4, 1, 1, 1.2, 1.2, 1])
            c[0].markdown(f"**{ui.md(who(r['owner']))}**" + (" · teacher" if r["teacher"] else ""))
            c[1].markdown(f"{r['runs']} run{'' if r['runs'] == 1 else 's'}")
            c[2].markdown(f"{r['live']} live")
            c[3].markdown(f"runs {ui.human_bytes(r['runs_b'])}")
            c[4].markdown(f"files {ui.human_bytes(r['projects_b'])}")
            with c[5].popover("Delete", icon=":material/delete:"):
                st.markdown(f"Delete every run, project, upload and study of {ui.md(who(r['owner']))}?")
                st.button("Delete permanently", type="primary", on_click=_delete_owner, args=(r["owner"],),
                          key=f"ll_admin_del_{key_of(r['owner'])}")
    studies_view()


def studies_view() -> None:
    """Every hyperparameter study on the server: its name as its owner sees it, its owner's label, trials, best
    value, age (:func:`builder.admin.housekeeping.admin_studies`). Deleting an owner's data deletes its studies."""
    st.subheader("Studies")
    rows = housekeeping.admin_studies(ui.store())
    if not rows:
        st.caption("No hyperparameter study on this server yet (Train › Search starts one).")
        return
    st.dataframe([{"Study": r["name"], "Owner": r["owner"], "Trials": r["n_trials"],
                   "Best value": r["best_value"], "Created": shown_time(r["created"], seconds=False, missing="—")} for r in rows],
                 hide_index=True, key="ll_admin_studies", column_config={
                     "Best value": st.column_config.NumberColumn(format="%.4g")})


try:
    my_data()
    if st.session_state.get("ll_server_error"):
        st.error(ui.error_md(st.session_state.ll_server_error))
    if owners.is_admin(ui.workspace(), ui.owner()):
        library_view()
        database_view()
        admin_view()
except LayerLabError as err:
    ui.show_error(err)
