"""The registry of LayerLab's doors: every entry point that takes a run id, a class, a study, a link or a project
(Python API functions, CLI verbs, job kinds, the pages' store), each with the attempt a second owner or a
stranger makes on the first owner's things. tests/test_access.py runs every attempt as each intruder and
fails for one that gets through, for a door registered without an attempt, and for a door it discovers
(a public function taking a store and a run id, a CLI argument naming a run, a job kind) that is not here.

An attempt is ``attempt(world, store)``: ``store`` is the run store bound to the intruder's actor; the
attempt returns normally only when the door refused without raising (a listing that left the run out, a
link or starter that dropped the id), after :func:`refused` says so, and raises AccessDenied (or the
door's own refusal) otherwise.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from builder.errors import AccessDenied, LayerLabError

RUN, CLASS, STUDY, LINK, PROJECT, SERVER = "run", "class", "study", "link", "project", "server"


@dataclass
class World:
    """The first owner's things in one workspace: ``ann`` (a finished run with weights), ``ann_class`` (a class
    ann is in, taught by ``teacher``), ``ann_study`` (a study made before study names were per owner: a bare
    name), ``project`` (a tiny project), and in ``extra["ann_studies"]`` every name of ann's studies (that one, a
    per-owner study's display name and its storage name)."""

    ws: Any
    ann: str
    ann_owner: str
    ann_class: str
    teacher: str
    ann_study: str
    storage: str
    project: Any
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Door:
    """One entry point: ``name`` (dotted path, ``cli: <verb> <argument>``, ``job: <kind>``), what it ``takes``
    and the ``attempt``; ``via``: the parameter the attempt passes the first owner's id through, when it is not
    the function's one id parameter (``project``: an id inside content; a function taking two ids has a door
    for each: tests/test_access.py fails for an id parameter no attempt goes through). ``writes``: the door writes
    into the run it names (its folder or its row), so it is also tried by actors that read the first owner's run
    without controlling it (shared mode, the teacher of its class): the run must come out unchanged, whether the
    door refused or did what a reader may (an MLflow export copies a run it reads)."""

    name: str
    takes: tuple[str, ...]
    attempt: Callable[[World, Any], Any] | None
    via: str | None = None
    writes: bool = False


class Refused(AccessDenied):
    """A door refused without raising (a run left out of a listing, an id dropped from a link)."""


def refused(why: str) -> None:
    """Record a refusal that raised nothing."""
    raise Refused(why)


def _with_training(project: Any, **training: Any) -> Any:
    return project.model_copy(update={"training": {**(project.training or {}), **training}})


def _stored_class(w: World) -> dict:
    """The first owner's class as stored (what a page that read it holds)."""
    from builder.data.access import SYSTEM
    from builder.runs import classes

    return classes.get_class(w.ws, w.ann_class, SYSTEM)


def _forged_class(w: World, s: Any) -> dict:
    """The first owner's class id in a record the caller made up: taught by the caller, with the first owner as
    its member (only the id may count: the stored class's teacher and members decide)."""
    return {**_stored_class(w), "teacher": s.actor.owner, "members": [w.ann_owner]}


def _link(data: dict) -> str:
    """A crafted share link (version 1) carrying exactly ``data``."""
    from builder.graph.share import LINK_VERSION

    raw = json.dumps(data, separators=(",", ":")).encode()
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = base64.urlsafe_b64encode(c.compress(raw) + c.flush()).decode().rstrip("=")
    return f"{LINK_VERSION}.{body}"


def _cli(*argv: str) -> Callable[[World, Any], Any]:
    """A CLI verb run by the command line's local user (its own actor, whatever ``store`` is); the arguments
    ``{ann}``, ``{ws}`` filled in. Raises AccessDenied with the printed refusal."""

    def attempt(w: World, store: Any) -> None:
        import contextlib
        import io

        from builder.cli.main import main

        err = io.StringIO()
        args = [a.format(ann=w.ann, ws=w.ws, ann12=w.ann[:12]) for a in argv]
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main([*args, "--workspace", str(w.ws)])
        text = err.getvalue()
        if code != 0 and ("of yours" in text or "another person's" in text):
            raise AccessDenied(text)
        raise AssertionError(f"the CLI let {args} through (exit {code}): {text[-400:]}")

    return attempt


def _studies(call: Callable[[World, Any, str], Any]) -> Callable[[World, Any], Any]:
    """A study door tried with every name of the first owner's studies (``world.extra["ann_studies"]``: an older
    bare-named study, a study's display name and its storage name); each must get the unknown name's answer."""

    def attempt(w: World, store: Any) -> None:
        last: AccessDenied | None = None
        for name in w.extra["ann_studies"]:
            try:
                call(w, store, name)
            except AccessDenied as e:
                if not str(e).startswith(f"no study named {name!r}"):
                    raise AssertionError(f"not the unknown name's answer for {name!r}: {e}") from None
                last = e
                continue
            raise AssertionError(f"the door let {store.actor.owner} reach study {name!r}")
        assert last is not None
        raise last

    return attempt


def _no_ann_study(w: World, names: list[Any]) -> None:
    """A listing or lookup that names none of the first owner's studies (their display or storage names)."""
    from builder.search.storage import resolve_study

    ann = {resolve_study(w.storage, n, owner=w.ann_owner, workspace=w.ws) for n in w.extra["ann_studies"]}
    leaked = [n for n in names if n is not None and (n in ann or n == w.ann_study)]
    if leaked:
        raise AssertionError(f"the first owner's studies reached: {leaked}")
    refused("left out")


def _cli_tune_study(w: World, store: Any) -> None:
    """``layerlab tune --study NAME`` by the command line's local user, whose study names are its own: the first
    owner's storage name is no name, and its display name makes the local user's own study, the first owner's
    keeping its trials."""
    import contextlib
    import io

    from builder.cli.main import main
    from builder.search.storage import load_study

    def tune(name: str) -> tuple[int, str]:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["tune", f"{w.ws}/p.json", "--study", name, "--trials", "1", "--search", "lr=1e-4..1e-1:log",
                         "--max-params", "1", "--json", "--workspace", str(w.ws)])
        return code, err.getvalue()

    def ann_trials() -> list[int]:
        return [len(load_study(w.storage, n, owner=w.ann_owner, workspace=w.ws).trials)
                for n in w.extra["ann_studies"] if "/" not in n]

    before = ann_trials()
    key = next(n for n in w.extra["ann_studies"] if "/" in n)
    code, text = tune(key)
    if code == 0:
        raise AssertionError(f"the CLI ran a study by another owner's storage name: {text[-400:]}")
    code, text = tune(w.ann_study)
    if code != 0 or "another person" in text or ann_trials() != before:
        raise AssertionError(f"the CLI's own study of a name touched another owner's (exit {code}): {text[-400:]}")
    refused("the local user's own study; the first owner's untouched")


def _train(w: World, store: Any, **training: Any) -> Any:
    from builder.runs.pipeline import run_training

    return run_training(_with_training(w.project, **training), "moons", {"epochs": 1}, store,
                        owner=store.actor.owner)


def _job(w: World, store: Any, spec: Any) -> None:
    """Record a job as the intruder and run its body in this process; the job's refusal (its run failed with
    "no run X of yours") raised as AccessDenied."""
    from builder.jobs import queue as jobs
    from builder.jobs.quotas import admit

    with admit(store):
        rid = jobs._record(store, spec)
    jobs.run_job(w.ws, rid)
    message = store.get(rid)["message"] or ""
    if "of yours" in message:
        raise AccessDenied(message)
    raise AssertionError(f"the job ran with another owner's run: {message}")


def nothing_of(answer: Any) -> None:
    """A view filtered by an owner's id, asked for the first owner by an intruder: nothing (none, false, empty)."""
    if answer is None or answer is False or (isinstance(answer, (list, dict)) and not answer):
        refused("nothing of the first owner's")
    raise AssertionError(f"answered with the first owner's: {answer!r}"[:300])


def _absent_from(ids: list[str], rid: str) -> None:
    if rid in ids:
        raise AssertionError(f"{rid} is listed")
    refused("left out")


def _brokered(call):
    """An attempt through a job's run store (:mod:`builder.process.broker`): a broker forked for the store's actor
    answers ``call(world, client)``, as it does in a confined job, the probe or a quantization."""
    def attempt(w, s):
        from builder.process import broker

        client = broker.start(s)
        try:
            return call(w, client)
        finally:
            client.close()
    return attempt


def _doors() -> list[Door]:
    from builder.admin import housekeeping
    from builder.data.access import controlled_run
    from builder.graph.share import decode_project
    from builder.interchange.onnx_export import export_run_onnx, quantize_run
    from builder.interchange.worker import quantize_run_isolated
    from builder.interpret.calibration import calibrate_run, stored_temperature
    from builder.interpret.doctor import graph_health, run_findings
    from builder.interpret.live import live_frames, live_playback, records_live
    from builder.interpret.robustness import robustness_run
    from builder.interpret.run_views import drift_run, evaluate_holdout, reconstruction_probe
    from builder.interpret.session import run_graph
    from builder.interpret.tryit import try_run
    from builder.jobs import job_sandbox, quotas
    from builder.jobs import queue as jobs
    from builder.jobs.probe import ModelProbe, ProbeSession
    from builder.jobs.specs import prune_job_spec
    from builder.runs import classes
    from builder.runs.crossval import cross_validate
    from builder.runs.modelcard import read_model_card, write_model_card
    from builder.runs.owners import check_sees
    from builder.runs.pipeline import (
        acting_owner,
        load_run,
        load_run_dataset,
        open_run,
        resume_objective,
        resume_run,
        run_objective,
        run_training,
    )
    from builder.runs.prune_run import prune_run, resume_pruned, run_prune_job
    from builder.runs.store import workspace_of
    from builder.runs.summary import (
        current_run,
        finished_run,
        has_trained,
        opened_project,
        run_data,
        run_overview,
        runs_of_graph,
    )
    from builder.search.runner import resume_study
    from builder.search.settings import StudySettings
    from builder.search.storage import claim_study, list_studies, load_study, request_stop, resolve_study
    from builder.search.study import StudyRunner
    from builder.tracking import TrackingState, export_runs, run_tags, sync_run, tracking_state
    from builder.training.lineage import inherit_tokenizer, pretrained_of
    from builder.training.objectives import with_teacher
    from builder.training.run_folder import keeping

    probe = ModelProbe  # never started: the check comes before the child

    def own_run(w: World, store: Any) -> str:
        rid = store.create_run(w.project, "moons", {}, {}, owner=store.actor.owner)
        store.update_status(rid, "stopped")  # not queued: it must not hold the job queue of the doors after it
        return rid

    def own_finished(w: World, store: Any) -> str:  # the intruder's own trained run (a parent of its own)
        return run_training(w.project, "moons", {"epochs": 1}, store, owner=store.actor.owner).run_id

    def into(w: World, store: Any, call: Callable[[], Any]) -> None:
        """A call that records into the first owner's run (a job's queued run, a prune's new run): refused before
        anything of that run changed (its row, its weights)."""
        from builder.data.access import SYSTEM
        from builder.runs.store import RunStore

        def state() -> tuple:
            check = RunStore(w.ws, actor=SYSTEM)
            row, weights = check.get(w.ann), check.weights_path(w.ann)
            return (row.project.to_json(), row.get("config"), row.get("dataset_options"), row.get("status"),
                    row.get("message"), weights.read_bytes() if weights.is_file() else None)

        before = state()
        try:
            call()
        except LayerLabError:
            if state() != before:
                raise AssertionError(f"{store.actor.owner} changed another owner's run {w.ann} before the "
                                     "refusal") from None
            raise
        raise AssertionError(f"{store.actor.owner} trained into another owner's run {w.ann}")

    def in_name_of(w: World, store: Any) -> None:
        """``owner=`` the first owner on the intruder's store: its uploads, a run recorded in its name."""
        rid = run_training(w.project, "moons", {"epochs": 1}, store, owner=w.ann_owner).run_id
        raise AssertionError(f"{store.actor.owner} recorded run {rid} in another owner's name")

    def baseline(w: World, store: Any) -> Any:  # training.split_of: the teacher's split, read from its run
        from builder.runs.pipeline import student_alone

        return student_alone(w.project, w.ann, "moons", {"epochs": 1}, store, owner=store.actor.owner)

    def library(w: World, store: Any) -> Any:  # a folder on the server, named in a form: the admin's setting
        from builder.interchange.hf_library import set_library_folder

        return set_library_folder(w.ws, store.actor.owner, str(w.ws))

    def database(w: World, store: Any) -> Any:  # a database URL (a file on the server), typed in a form
        from builder.runs.db import set_database_url

        return set_database_url(w.ws, store.actor, f"sqlite:///{w.ws / 'other.db'}")

    def library_model(w: World, store: Any) -> None:
        """A library model is named by its folder's name (a canvas drop, Build › Import): a path, a climb, ``~``,
        the workspace's runs or another owner's uploads name nothing, and the answer quotes no server folder."""
        import os

        from builder.escape import visible
        from builder.interchange.hf_library import LIBRARY_ENV, import_library_model
        from builder.runs.owners import upload_dir

        lib = w.ws.parent / "library"
        (lib / "tiny").mkdir(parents=True, exist_ok=True)
        (w.ws.parent / "outside").mkdir(exist_ok=True)
        names = [str(w.ws), "..", "../outside", "~", "/", "tiny/../../outside", f"tiny/../../{w.ws.name}/runs",
                 str(w.ws / "runs" / w.ann), str(upload_dir(w.ws, w.ann_owner)), "tiny/", "./tiny", "tiny\x00",
                 "file:///etc", "upload:" + "0" * 64]
        def answer(name: str) -> str:  # the refusal with the name as received replaced: the same for every name
            try:
                import_library_model(store, w.ws, name)
            except LayerLabError as e:
                return str(e).replace(repr(visible(name, 80)), "NAME")
            raise AssertionError(f"the library imported {name!r}")

        before = os.environ.get(LIBRARY_ENV)
        os.environ[LIBRARY_ENV] = str(lib)
        try:
            unknown = answer("no-such-model")
            for name in names:  # whether the folder exists or not, inside the workspace or not: one answer
                if answer(name) != unknown:
                    raise AssertionError(f"{name!r}: {answer(name)}")
        finally:
            if before is None:
                os.environ.pop(LIBRARY_ENV, None)
            else:
                os.environ[LIBRARY_ENV] = before
        refused("a name outside the library resolves to nothing")

    def ann_record(w: World) -> Any:
        """The first owner's run as a whole record (read by trusted code), handed to a door that takes one."""
        from builder.data.access import SYSTEM
        from builder.runs.store import RunStore

        return RunStore(w.ws, actor=SYSTEM).get(w.ann)

    def overview(w: World, store: Any) -> None:  # swallows errors: what it found must be nothing
        o = run_overview(store, ann_record(w))
        if o["record"] is None and not o["epochs"]:
            refused("nothing read")
        raise AssertionError(f"run_overview read another owner's run: {sorted(k for k, v in o.items() if v)}")

    def distil(w: World, store: Any) -> Any:
        return run_training(with_teacher(w.project, w.ann), "moons", {"epochs": 1}, store, owner=store.actor.owner)

    return [
        # ---- the run store
        Door("builder.runs.store.RunStore.get", (RUN,), lambda w, s: s.get(w.ann)),
        Door("builder.runs.store.RunStore.run_dir", (RUN,), lambda w, s: s.run_dir(w.ann)),
        Door("builder.runs.store.RunStore.folder", (RUN,), lambda w, s: s.folder(w.ann)),
        # the one door to a run's folder for writers (tests/runs/test_run_writes.py): control, not reading
        Door("builder.runs.store.RunStore.folder", (RUN,), lambda w, s: s.folder(w.ann, write=True).to_write(),
             via="write", writes=True),
        Door("builder.runs.store.RunStore.run_dir", (RUN,), lambda w, s: s.run_dir(w.ann, write=True),
             via="write", writes=True),
        Door("builder.runs.store.RunStore.job_spec", (RUN,), lambda w, s: s.job_spec(w.ann)),
        Door("builder.runs.store.RunStore.weights_path", (RUN,), lambda w, s: s.weights_path(w.ann)),
        Door("builder.runs.store.RunStore.checkpoint_path", (RUN,), lambda w, s: s.checkpoint_path(w.ann)),
        Door("builder.runs.store.RunStore.metrics", (RUN,), lambda w, s: s.metrics(w.ann)),
        Door("builder.runs.store.RunStore.metrics_after", (RUN,), lambda w, s: s.metrics_after(w.ann)),
        Door("builder.runs.store.RunStore.delete_run", (RUN,), lambda w, s: s.delete_run(w.ann)),
        # ---- the writers of a run's row: its owner's (the system's), a stop request also its teacher's or an admin's
        Door("builder.runs.store.RunStore.update_run", (RUN,), lambda w, s: s.update_run(w.ann, message="x"),
             writes=True),
        Door("builder.runs.store.RunStore.update_run", (RUN,), lambda w, s: s.update_run(w.ann, tags={"x": "1"}),
             writes=True),
        Door("builder.runs.store.RunStore.update_status", (RUN,), lambda w, s: s.update_status(w.ann, "failed"),
             writes=True),
        Door("builder.runs.store.RunStore.finish", (RUN,), lambda w, s: s.finish(w.ann, "failed", {"loss": 9.0}),
             writes=True),
        Door("builder.runs.store.RunStore.set_environment", (RUN,), lambda w, s: s.set_environment(w.ann, x=1),
             writes=True),
        Door("builder.runs.store.RunStore.log_metrics", (RUN,), lambda w, s: s.log_metrics(
            w.ann, {"type": "epoch", "epoch": 99, "loss": 9.0}), writes=True),
        Door("builder.runs.store.RunStore.truncate_metrics", (RUN,), lambda w, s: s.truncate_metrics(w.ann, -1),
             writes=True),
        Door("builder.runs.store.RunStore.set_control", (RUN,), lambda w, s: s.set_control(w.ann, "pause"),
             writes=True),
        Door("builder.runs.store.RunStore.take_control", (RUN,), lambda w, s: s.take_control(w.ann), writes=True),
        Door("builder.runs.store.RunStore.requeue", (RUN,), lambda w, s: s.requeue(w.ann), writes=True),
        Door("builder.runs.store.RunStore.claim_slot", (RUN,), lambda w, s: s.claim_slot(w.ann, 9), writes=True),
        Door("builder.runs.store.RunStore.beat", (RUN,), lambda w, s: s.beat([w.ann]), writes=True),
        Door("builder.runs.store.RunStore.mark_placed", (RUN,), lambda w, s: s.mark_placed([w.ann]), writes=True),
        Door("builder.runs.store.RunStore.list_runs", (RUN, CLASS),
             lambda w, s: _absent_from([r["id"] for r in s.list_runs(class_id=w.ann_class)], w.ann)),
        Door("builder.runs.store.RunStore.list_runs", (RUN,),
             lambda w, s: _absent_from([r["id"] for r in s.list_runs(owner=w.ann_owner)], w.ann), via="owner"),
        Door("builder.runs.store.workspace_of", (RUN,), lambda w, s: workspace_of(s, w.ann)),
        # a text run starting from another's run would read that run's tokenizer.json
        Door("builder.training.lineage.inherit_tokenizer", (RUN,),
             lambda w, s: inherit_tokenizer(s, w.ann, "text", {"upload": "u"})),
        # ---- after training: explanations, checks, exports
        Door("builder.jobs.probe.ModelProbe.request", (RUN,),
             lambda w, s: probe().request(s, w.ann, "test", "hello")),
        Door("builder.jobs.probe.ModelProbe.drift", (RUN,), lambda w, s: probe().drift(s, w.ann, w.ws)),
        Door("builder.jobs.probe.ModelProbe.reconstructions", (RUN,),
             lambda w, s: probe().reconstructions(s, w.ann)),
        Door("builder.jobs.probe.ProbeSession.__init__", (RUN,), lambda w, s: ProbeSession(probe(), s, w.ann)),
        Door("builder.interchange.worker.quantize_run_isolated", (RUN,), lambda w, s: quantize_run_isolated(s, w.ann),
             writes=True),
        Door("builder.interchange.onnx_export.quantize_run", (RUN,), lambda w, s: quantize_run(s, w.ann), writes=True),
        Door("builder.interchange.onnx_export.export_run_onnx", (RUN,),
             lambda w, s: export_run_onnx(s, w.ann, w.ws / "x.onnx")),
        # without a path: into the run's exports/ (its controller's alone)
        Door("builder.interchange.onnx_export.export_run_onnx", (RUN,), lambda w, s: export_run_onnx(s, w.ann),
             via="path", writes=True),
        Door("builder.interpret.run_views.drift_run", (RUN,), lambda w, s: drift_run(s, w.ann, w.ws)),
        Door("builder.interpret.calibration.calibrate_run", (RUN,), lambda w, s: calibrate_run(s, w.ann), writes=True),
        Door("builder.interpret.calibration.stored_temperature", (RUN,), lambda w, s: stored_temperature(s, w.ann)),
        Door("builder.interpret.doctor.run_findings", (RUN,), lambda w, s: run_findings(s, w.ann)),
        Door("builder.interpret.live.live_frames", (RUN,), lambda w, s: live_frames(s, w.ann)),
        Door("builder.interpret.live.records_live", (RUN,), lambda w, s: records_live(s, w.ann)),
        Door("builder.interpret.robustness.robustness_run", (RUN,), lambda w, s: robustness_run(s, w.ann), writes=True),
        Door("builder.interpret.session.run_graph", (RUN,), lambda w, s: run_graph(s, w.ann)),
        Door("builder.training.run_folder.keeping", (RUN,), lambda w, s: keeping(s, w.ann, "robustness"), writes=True),
        Door("builder.runs.modelcard.write_model_card", (RUN,), lambda w, s: write_model_card(s, w.ann), writes=True),
        Door("builder.runs.modelcard.read_model_card", (RUN,), lambda w, s: read_model_card(s, w.ann)),
        Door("builder.interpret.run_views.reconstruction_probe", (RUN,),
             lambda w, s: reconstruction_probe(s, w.ann)),
        Door("builder.tracking.export_runs", (RUN,),
             # the command line's destination (owner local: a server owner's is the admin's allow-list)
             lambda w, s: export_runs(s, [w.ann], f"sqlite:///{w.ws.parent / 'mlflow.db'}", owner="local"),
             writes=True),
        Door("builder.tracking.tracking_state", (RUN,),
             lambda w, s: tracking_state(s, w.ann, f"sqlite:///{w.ws.parent / 'mlflow.db'}")),
        Door("builder.tracking.sync_run", (RUN,),  # the run is read before the tracker is touched
             lambda w, s: sync_run(None, s, w.ann, TrackingState(), final=True)),
        Door("builder.jobs.probe.ModelProbe.holdout", (RUN,),
             lambda w, s: probe().holdout(s, w.ann, {"dataset": "moons"}, "accuracy")),
        Door("builder.interpret.run_views.evaluate_holdout", (RUN,),
             lambda w, s: evaluate_holdout(s, w.ann, {"dataset": "moons"}, "accuracy")),
        # ---- a whole run record: its id is read (or written) through the store, as the actor
        Door("builder.runs.pipeline.open_run", (RUN,), lambda w, s: open_run(s, ann_record(w))),
        Door("builder.runs.pipeline.load_run_dataset", (RUN,), lambda w, s: load_run_dataset(s, ann_record(w))),
        Door("builder.runs.summary.run_data", (RUN,), lambda w, s: run_data(s, ann_record(w))),
        Door("builder.runs.pipeline.resume_objective", (RUN,), lambda w, s: resume_objective(
            ann_record(w), s, w.project, None, None, [], [], w.ws / "none.safetensors"), writes=True),
        Door("builder.interpret.live.live_playback", (RUN,), lambda w, s: live_playback(s, ann_record(w))),
        Door("builder.runs.summary.run_overview", (RUN,), overview),
        Door("builder.runs.summary.opened_project", (RUN,), lambda w, s: opened_project(s, w.ann)),
        Door("builder.tracking.run_tags", (RUN,), lambda w, s: run_tags(s, {**dict(ann_record(w)), "tags": None})),
        Door("builder.training.lineage.pretrained_of", (RUN,), lambda w, s: pretrained_of(
            s, {**dict(ann_record(w)), "dataset_options": {"tokenizer": "pretrained"}})),
        # ---- training from, distilling, resuming, pruning another's run
        Door("builder.runs.pipeline.load_run", (RUN,), lambda w, s: load_run(s, w.ann)),
        Door("builder.runs.pipeline.resume_run", (RUN,), lambda w, s: resume_run(w.ann, s), writes=True),
        Door("builder.runs.pipeline.run_training", (RUN, PROJECT), lambda w, s: _train(w, s, init_from=w.ann),
             via="project"),  # training.init_from
        # run_id: record into this queued run (a job's own); another's finished run was retrained into its folder
        Door("builder.runs.pipeline.run_training", (RUN,), lambda w, s: into(w, s, lambda: run_training(
            w.project, "moons", {"epochs": 1}, s, owner=s.actor.owner, run_id=w.ann)), writes=True),
        # owner: whose uploads it reads and whose run it records (the store's actor only)
        Door("builder.runs.pipeline.run_training", (RUN, PROJECT), in_name_of, via="owner"),
        Door("builder.runs.pipeline.run_objective", (RUN, PROJECT), distil, via="project"),  # training.teacher
        Door("builder.runs.pipeline.run_objective", (RUN,), lambda w, s: into(w, s, lambda: run_objective(
            with_teacher(w.project, own_finished(w, s)), "moons", {"epochs": 1}, s, owner=s.actor.owner,
            run_id=w.ann)), writes=True),
        Door("builder.data.access.controlled_run", (RUN,), lambda w, s: controlled_run(s, w.ann), writes=True),
        Door("builder.training.objectives.with_teacher", (RUN, PROJECT), distil),
        Door("builder.runs.pipeline.student_alone", (RUN, PROJECT), baseline),
        Door("builder.runs.prune_run.prune_run", (RUN,), lambda w, s: prune_run(s, w.ann), via="run_id"),
        Door("builder.runs.prune_run.prune_run", (RUN,), lambda w, s: into(w, s, lambda: prune_run(
            s, own_finished(w, s), finetune_epochs=0, latency_repeats=1, new_run=w.ann)), via="new_run", writes=True),
        Door("builder.jobs.specs.prune_job_spec", (RUN,), lambda w, s: prune_job_spec(s, w.ann)),
        Door("builder.jobs.job_sandbox.job_room", (RUN,), lambda w, s: job_sandbox.job_room(s, w.ann)),
        Door("builder.runs.prune_run.run_prune_job", (RUN,),
             lambda w, s: run_prune_job(s, own_run(w, s), {"parent": w.ann}), via="args"),  # the parent
        Door("builder.runs.prune_run.run_prune_job", (RUN,), lambda w, s: into(w, s, lambda: run_prune_job(
            s, w.ann, {"parent": own_finished(w, s), "finetune_epochs": 0, "latency_repeats": 1})), writes=True),
        Door("builder.runs.prune_run.resume_pruned", (RUN,), lambda w, s: resume_pruned(s, w.ann), writes=True),
        # ---- jobs
        Door("builder.jobs.queue.submit", (RUN, PROJECT),
             lambda w, s: jobs.submit(s, jobs.JobSpec(project={}, dataset="", owner=s.actor.owner, resume_run=w.ann)),
             writes=True),
        Door("builder.jobs.queue.submit: a prune job", (RUN,), lambda w, s: jobs.submit(s, jobs.JobSpec(
            project=w.project.model_dump(mode="json"), dataset="moons", owner=s.actor.owner, kind="prune",
            prune={"parent": w.ann}))),  # refused before anything is recorded (the job would refuse it too)
        # owner: a job (and a group of jobs) for the first owner, submitted on the intruder's store
        Door("builder.jobs.queue.submit", (RUN, PROJECT), lambda w, s: jobs.submit(s, jobs.JobSpec(
            project=w.project.model_dump(mode="json"), dataset="moons", owner=w.ann_owner)), via="owner"),
        Door("builder.jobs.queue.submit_group", (RUN, PROJECT), lambda w, s: jobs.submit_group(s, [jobs.JobSpec(
            project=w.project.model_dump(mode="json"), dataset="moons", owner=w.ann_owner)]), via="owner"),
        Door("builder.jobs.queue.request", (RUN,), lambda w, s: jobs.request(s, w.ann, "stop")),
        Door("builder.jobs.queue.queue_position", (RUN,), lambda w, s: jobs.queue_position(s, w.ann)),
        Door("builder.runs.store.RunStore.queue_position", (RUN,), lambda w, s: s.queue_position(w.ann)),
        Door("builder.jobs.queue.wait", (RUN,), lambda w, s: jobs.wait(s, [w.ann], timeout=0)),
        Door("job: train", (RUN, PROJECT), lambda w, s: _job(w, s, jobs.JobSpec(
            project=_with_training(w.project, init_from=w.ann).model_dump(mode="json"), dataset="moons",
            config={"epochs": 1}, owner=s.actor.owner))),
        Door("job: prune", (RUN,), lambda w, s: _job(w, s, jobs.JobSpec(
            project=w.project.model_dump(mode="json"), dataset="moons", owner=s.actor.owner, kind="prune",
            prune={"parent": w.ann}))),
        # ---- the server's settings
        Door("builder.interchange.hf_library.set_library_folder", (SERVER,), library),
        Door("builder.runs.db.set_database_url", (SERVER,), database),
        # ---- content: a library model is a name, never a folder
        Door("builder.interchange.hf_library.import_library_model", (PROJECT,), library_model),
        # ---- housekeeping, classes, studies (the actor named by its owner id, resolved inside)
        Door("builder.admin.housekeeping.server_jobs", (RUN,), lambda w, s: housekeeping.server_jobs(s)),
        Door("builder.admin.housekeeping.workspace_usage", (RUN,), lambda w, s: housekeeping.workspace_usage(s)),
        Door("builder.admin.housekeeping.admin_owners", (RUN,), lambda w, s: housekeeping.admin_owners(s)),
        Door("builder.admin.housekeeping.stop_job", (RUN,), lambda w, s: housekeeping.stop_job(s, w.ann, s.actor.owner)),
        Door("builder.admin.housekeeping.delete_runs", (RUN,),
             lambda w, s: housekeeping.delete_runs(s, s.actor.owner, [w.ann])),
        Door("builder.admin.housekeeping.delete_class_data", (CLASS,),
             lambda w, s: housekeeping.delete_class_data(s, w.ann_class, s.actor.owner)),
        Door("builder.admin.housekeeping.delete_class_data", (CLASS,),  # naming the class's teacher as the actor
             lambda w, s: housekeeping.delete_class_data(s, w.ann_class, w.teacher), via="teacher"),
        Door("builder.runs.classes.post_starter", (CLASS, PROJECT),
             lambda w, s: classes.post_starter(w.ws, w.ann_class, s.actor.owner, w.project)),
        Door("builder.runs.classes.update_class", (CLASS,),
             lambda w, s: classes.update_class(w.ws, w.ann_class, s.actor.owner, metric="loss")),
        Door("builder.runs.classes.delete_class", (CLASS,),
             lambda w, s: classes.delete_class(w.ws, w.ann_class, s.actor.owner)),
        Door("builder.runs.classes.class_for", (CLASS, PROJECT),
             lambda w, s: classes.class_for(w.ws, s.actor, _with_training(w.project, class_id=w.ann_class))),
        Door("builder.runs.classes.create_class", (RUN, PROJECT),  # a starter never carries the teacher's run ids
             lambda w, s: (lambda c: refused("dropped") if not (c["starter"].get("training") or {}).get("init_from")
                           else None)(classes.create_class(w.ws, w.teacher, "x", _with_training(w.project,
                                                                                                init_from=w.ann)))),
        Door("builder.search.storage.load_study", (STUDY,),
             _studies(lambda w, s, n: load_study(w.storage, n, owner=s.actor.owner, workspace=w.ws))),
        Door("builder.search.storage.request_stop", (STUDY,),
             _studies(lambda w, s, n: request_stop(w.storage, n, owner=s.actor.owner, workspace=w.ws))),
        Door("builder.search.runner.resume_study", (STUDY,),
             _studies(lambda w, s, n: resume_study(w.ws, w.storage, n, owner=s.actor.owner))),
        Door("builder.search.storage.list_studies", (STUDY,),
             lambda w, s: _no_ann_study(w, [r["name"] for r in list_studies(w.storage, owner=s.actor.owner,
                                                                            workspace=w.ws)])),
        Door("builder.search.storage.resolve_study", (STUDY,),
             lambda w, s: _no_ann_study(w, [resolve_study(w.storage, n, owner=s.actor.owner, workspace=w.ws)
                                            for n in w.extra["ann_studies"]])),
        Door("builder.search.study.StudyRunner.__init__", (STUDY, PROJECT),  # the owner in its settings: whose upload
             lambda w, s: StudyRunner(s, w.project, "moons", space=["lr=1e-3..1e-1"],  # it loads, whose study it opens
                                      settings=StudySettings(name="lr", storage=w.storage, owner=w.ann_owner)),
             via="owner"),
        Door("builder.search.storage.claim_study", (STUDY,),  # a name of ann's gives the intruder its own study
             lambda w, s: _no_ann_study(w, [claim_study(w.storage, "ann-new", owner=s.actor.owner, workspace=w.ws)])),
        Door("builder.admin.housekeeping.admin_studies", (STUDY,), lambda w, s: housekeeping.admin_studies(s)),
        Door("builder.admin.housekeeping.delete_owner_data", (RUN, PROJECT),  # the first owner's runs and folder
             lambda w, s: housekeeping.delete_owner_data(s, s.actor.owner, w.ann_owner)),
        Door("builder.admin.housekeeping.owner_usage", (RUN,), lambda w, s: housekeeping.owner_usage(s, w.ann_owner),
             via="owner"),
        # ---- owner: a call about, or on behalf of, the owner it names, on the intruder's store: the first owner's
        # figures only for itself or an admin (builder.runs.store.check_sees); acting for someone else never
        # (builder.data.access.check_acting); a view filtered by owner shows only what the store's actor reads
        Door("builder.admin.housekeeping.stop_job", (RUN,), lambda w, s: housekeeping.stop_job(s, w.ann, w.ann_owner),
             via="owner", writes=True),
        Door("builder.admin.housekeeping.delete_runs", (RUN,),
             lambda w, s: housekeeping.delete_runs(s, w.ann_owner, [w.ann]), via="owner", writes=True),
        Door("builder.admin.housekeeping.delete_owner_data", (RUN, PROJECT),
             lambda w, s: housekeeping.delete_owner_data(s, w.ann_owner, w.ann_owner), via="owner", writes=True),
        Door("builder.jobs.quotas.usage", (RUN,), lambda w, s: quotas.usage(s, w.ann_owner), via="owner"),
        Door("builder.jobs.quotas.storage_bytes", (RUN,), lambda w, s: quotas.storage_bytes(s, w.ann_owner),
             via="owner"),
        Door("builder.jobs.quotas.check_quota", (RUN,), lambda w, s: quotas.check_quota(s, w.ann_owner), via="owner"),
        Door("builder.jobs.quotas.check_storage", (RUN,), lambda w, s: quotas.check_storage(s, w.ann_owner),
             via="owner"),
        Door("builder.jobs.quotas.check_upload", (RUN,), lambda w, s: quotas.check_upload(s, w.ann_owner, 1),
             via="owner"),
        Door("builder.jobs.quotas.check_study", (RUN,), lambda w, s: quotas.check_study(s, w.ann_owner, studies=0),
             via="owner"),
        Door("builder.jobs.quotas.gpu_limit", (RUN,), lambda w, s: quotas.gpu_limit(s, w.ann_owner), via="owner"),
        Door("builder.jobs.quotas.gpu_spent", (RUN,), lambda w, s: quotas.gpu_spent(s, w.ann_owner, {"cap": 1.0}),
             via="owner"),
        Door("builder.runs.owners.check_sees", (RUN,), lambda w, s: check_sees(s, w.ann_owner), via="owner"),
        Door("builder.runs.store.RunStore.record_bytes", (RUN,), lambda w, s: s.record_bytes(w.ann_owner),
             via="owner"),
        Door("builder.runs.pipeline.acting_owner", (RUN,), lambda w, s: acting_owner(s, w.ann_owner), via="owner"),
        Door("builder.runs.crossval.cross_validate", (RUN, PROJECT), lambda w, s: cross_validate(
            w.project, "moons", {"epochs": 1}, s, folds=2, owner=w.ann_owner), via="owner"),
        Door("builder.runs.pipeline.run_objective", (RUN, PROJECT), lambda w, s: run_objective(
            w.project, "moons", {"epochs": 1}, s, owner=w.ann_owner), via="owner"),
        Door("builder.jobs.specs.prune_job_spec", (RUN,), lambda w, s: jobs.submit(s, prune_job_spec(
            s, own_finished(w, s), owner=w.ann_owner)), via="owner"),
        Door("builder.tracking.export_runs", (RUN,), lambda w, s: export_runs(
            s, [], f"sqlite:///{w.ws.parent / 'mlflow-owner.db'}", owner=w.ann_owner), via="owner"),
        Door("builder.runs.summary.runs_of_graph", (RUN,),
             lambda w, s: nothing_of(runs_of_graph(s, ann_record(w).project.graph, w.ann_owner)), via="owner"),
        Door("builder.runs.summary.current_run", (RUN,),
             lambda w, s: nothing_of(current_run(s, ann_record(w).project.graph, w.ann_owner)), via="owner"),
        Door("builder.runs.summary.finished_run", (RUN,),
             lambda w, s: nothing_of(finished_run(s, ann_record(w).project.graph, w.ann_owner)), via="owner"),
        Door("builder.runs.summary.has_trained", (RUN,), lambda w, s: nothing_of(has_trained(s, w.ann_owner)),
             via="owner"),
        Door("builder.interpret.tryit.try_run", (RUN,),
             lambda w, s: nothing_of(try_run(s, ann_record(w).project.graph, w.ann_owner)), via="owner"),
        Door("builder.interpret.doctor.graph_health", (RUN,),
             lambda w, s: nothing_of(graph_health(s, ann_record(w).project.graph, w.ann_owner)), via="owner"),
        Door("builder.admin.housekeeping.class_usage", (CLASS,),
             lambda w, s: housekeeping.class_usage(s, _stored_class(w))),
        Door("builder.admin.housekeeping.class_usage", (CLASS,),  # a made-up record naming the caller its teacher
             lambda w, s: housekeeping.class_usage(s, _forged_class(w, s)), via="record"),
        Door("builder.admin.housekeeping.class_run_ids", (CLASS, RUN),
             lambda w, s: housekeeping.class_run_ids(s, _stored_class(w))),
        Door("builder.admin.housekeeping.class_run_ids", (CLASS, RUN),
             lambda w, s: _absent_from([r["id"] for r in housekeeping.class_run_ids(s, _forged_class(w, s))], w.ann),
             via="record"),
        Door("builder.runs.classes.get_class", (CLASS,),  # the record holds the join code
             lambda w, s: classes.get_class(w.ws, w.ann_class, s.actor)),
        Door("builder.runs.classes.list_classes", (CLASS,), lambda w, s: _absent_from(
            [c["id"] for c in classes.list_classes(w.ws, actor=s.actor)], w.ann_class), via="actor"),
        # ---- the class leaderboard (the class as its record: the page reads the teacher's own classes)
        Door("builder.runs.classes.class_runs", (CLASS, RUN), lambda w, s: _absent_from(
            [r["id"] for r in classes.class_runs(s, _stored_class(w))], w.ann)),
        Door("builder.runs.classes.class_runs", (CLASS, RUN), lambda w, s: _absent_from(
            [r["id"] for r in classes.class_runs(s, _forged_class(w, s))], w.ann), via="record"),
        Door("builder.runs.classes.leaderboard", (CLASS, RUN), lambda w, s: _absent_from(
            [r["id"] for r in classes.leaderboard(s, _stored_class(w))], w.ann)),
        # ---- content: a share link names no run
        Door("builder.graph.share.decode_project", (LINK, RUN),
             lambda w, s: (lambda p: refused("dropped") if not set(p.training or {}) & {"init_from", "teacher",
                                                                                          "class_id"} else None)(
                 decode_project(_link(json.loads(_with_training(w.project, init_from=w.ann, teacher=w.ann,
                                                                class_id=w.ann_class).to_json()))))),
        # ---- the command line (its local user: an admin that reads only its own runs)
        Door("cli: runs show run_id", (RUN,), _cli("runs", "show", "{ann}")),
        Door("cli: runs resume run_id", (RUN,), _cli("runs", "resume", "{ann}"), writes=True),
        Door("cli: runs delete run_id", (RUN,), _cli("runs", "delete", "{ann12}")),  # exact ids: an admin's right
        Door("cli: runs export-mlflow run_ids", (RUN,), _cli("runs", "export-mlflow", "{ann}", "--mlflow",
                                                             "sqlite:///{ws}/../m.db"), writes=True),
        Door("cli: export run", (RUN,), _cli("export", "--run", "{ann}"), writes=True),  # into the run's exports/
        Door("cli: train init_from", (RUN,), _cli("train", "{ws}/p.json", "--init-from", "{ann}", "--epochs", "1")),
        Door("cli: train teacher", (RUN,), _cli("train", "{ws}/p.json", "--teacher", "{ann}", "--epochs", "1")),
        Door("cli: calibrate run_id", (RUN,), _cli("calibrate", "{ann}"), writes=True),
        Door("cli: drift run_id", (RUN,), _cli("drift", "{ann}", "--data-path", "{ws}/p.json")),
        Door("cli: prune run_id", (RUN,), _cli("prune", "{ann}")),
        Door("cli: robustness run_id", (RUN,), _cli("robustness", "{ann}"), writes=True),
        Door("cli: predict run_id", (RUN,), _cli("predict", "{ann}", "--text", "1, 2, 3, 4")),
        Door("cli: tune study", (STUDY,), _cli_tune_study),
        # ---- a confined process's store: its broker answers as the process's actor (builder.process.broker)
        *(Door(f"builder.process.broker.StoreClient.{name}", (RUN,), _brokered(call), writes=writes)
          for name, call, writes in (
              ("get", lambda w, c: c.get(w.ann), False), ("run_dir", lambda w, c: c.run_dir(w.ann, write=True), True),
              ("folder", lambda w, c: c.folder(w.ann, write=True).to_write(), True),
              ("metrics", lambda w, c: c.metrics(w.ann), False), ("job_spec", lambda w, c: c.job_spec(w.ann), False),
              ("weights_path", lambda w, c: c.weights_path(w.ann), False),
              ("update_run", lambda w, c: c.update_run(w.ann, message="x"), True),
              ("update_status", lambda w, c: c.update_status(w.ann, "failed"), True),
              ("finish", lambda w, c: c.finish(w.ann, "failed", {"loss": 9.0}), True),
              ("log_metrics", lambda w, c: c.log_metrics(w.ann, {"type": "epoch", "epoch": 99, "loss": 9.0}), True),
              ("take_control", lambda w, c: c.take_control(w.ann), True),
              ("beat", lambda w, c: c.beat([w.ann]), True),
              ("list_runs", lambda w, c: _absent_from([r["id"] for r in c.list_runs(owner=w.ann_owner)], w.ann),
               False))),
    ]


DOORS: list[Door] = []


def doors() -> list[Door]:
    """The registry (built on first use: its imports are heavy)."""
    if not DOORS:
        DOORS.extend(_doors())
    return DOORS


# CLI arguments that name files on the command line's own machine, or act for an owner: the command line's
# privilege (docs: trust.md, "the CLI's local user may pass paths on the command line"), not a door for content.
CLI_PRIVILEGE = {"cli: " + a for a in (
    "validate file", "summary file", "export file", "export weights", "export output", "import source",
    "import output", "templates output", "arch output", "train file", "train data_path", "tune file",
    "tune storage", "tune owner", "tune data_path", "drift data_path", "predict input_path",
)}

# writer doors a reader may pass through, as long as nothing of the run changes: an MLflow export copies a run the
# actor reads (its tracking record is kept only in runs the actor controls)
READER_MAY = {"builder.tracking.export_runs", "cli: runs export-mlflow run_ids"}

# store methods the job process uses on its own run (never called by a page or a CLI verb: tests/test_access.py
# checks), and functions that take an already-checked run row
ROW_WRITERS = frozenset({"update_run", "update_status", "set_environment", "truncate_metrics", "finish", "log_metrics",
                         "set_control", "take_control", "requeue", "beat", "mark_placed", "claim_slot"})
"""The store's writers of a run's row: each checks the store's actor (its doors above); only jobs, the queue and
the pipeline call them, never a page or a CLI verb (tests/test_access.py)."""

INTERNAL = {
    "builder.runs.store.RunStore.create_run",
    "builder.runs.run_logger.RunLogger.__init__", "builder.jobs.control.StoreControl.__init__",
    "builder.jobs.queue.claim_gpu", "builder.jobs.queue.run_job", "builder.jobs.job_sandbox.record_death",
    "builder.tracking.MlflowCallback.__init__", "builder.search.study.JobLauncher.stop",
    "builder.tracking.attach_tracking",  # the pipeline's callbacks for the run it has just recorded
    "builder.runs.classes.get_class",  # a lookup for code that then asks the policy (_own, class_for, deletion)
    # a row class_runs listed for its actor: the score is the run's on the class's held-out set, by the scorer
    # (the page's probe, which reads the run as the actor) or from the class's cache; only the class's teacher (as
    # stored) scores into that shared cache, the run read through the store (tests/runs/test_classes.py)
    "builder.runs.classes.holdout_score", "builder.runs.classes.holdout_result",
    "builder.runs.classes.member_label",  # a pseudonym of a member of a class the caller holds (no run, no file)
    # where an admitted job runs: called by the queue's start after submit recorded it as the submitter's actor
    "builder.jobs.executors.Executor.start", "builder.jobs.executors.LocalExecutor.start",
    "builder.jobs.executors.RayExecutor.start", "builder.jobs.executors.job_resources",
    "builder.jobs.ray_task.run_on_node",  # the Ray task body of a job RayExecutor.start placed (as run_job locally)
    "builder.jobs.warm.launch_warm",  # asks the warm launcher to fork a job submit recorded (as LocalExecutor.start)
    # inside a job (or the quantizing worker) on its own run: the paths it may touch once it confines itself
    "builder.process.landlock.confinement", "builder.jobs.job_sandbox.confinement",
    # a run record the caller read through the store, mapped to its dataset source without opening anything (no
    # actor to ask here: the check was the caller's get; an upload resolves inside the record's owner's folder)
    "builder.runs.summary.run_source", "builder.runs.summary.dataset_spec_of_run",
    # a record the caller read through the store, printed with its owner as a pseudonym: opens nothing, reads no id
    "builder.runs.summary.shown_record",
    "builder.jobs.warm.launcher",  # ``run`` is the job body it forks, not a run
    "builder.jobs.warm.kept",  # a cold job's process: forks the job body (``run``) for the run submit recorded
    # the error of a step fails the run its caller just recorded (store.finish checks the store's actor)
    "builder.runs.pipeline.fails_run",
}

OWNER_INTERNAL = {
    # functions taking a store and an ``owner`` that is not a person's to name: why
    "builder.runs.store.RunStore.create_run": "records a run for the owner its caller checked (acting_owner, "
                                              "a job's spec admitted by submit)",
    "builder.runs.pipeline.owner_uploads": "the folder an owner's upload ids resolve in, for the owner its caller "
                                           "checked: the acting owner, or the owner of a run it read",
    "builder.runs.pipeline.run_training": "registered above with via='owner' (in_name_of)",
    "builder.jobs.job_sandbox.confinement": "inside a job, on its own run (as in INTERNAL)",
    "builder.jobs.queue.job_memory": "an estimate: the spec's owner is not read (a teacher is read through the "
                                     "store it is given, as that store's actor)",
    "builder.jobs.queue.job_need": "job_memory on CUDA (as job_memory)",
    "builder.jobs.executors.place_jobs": "the scheduler's own rows (_Job, read from the store as the system), no "
                                         "person's call",
    "builder.process.landlock.confinement": "inside a job or the quantizing worker, on its own run (as in INTERNAL)",
}
"""Public functions taking a store and an ``owner`` without a door of their own for it (tests/test_access.py)."""

SENSITIVE_CLI = {"run", "run_id", "run_ids", "init_from", "teacher", "study", "owner", "file", "source",
                 "data_path", "weights", "storage", "output", "class_id", "input_path"}
ID_PARAMS = {"run_id", "run_ids", "class_id", "cls", "new_run", "rid", "parent", "init_from", "run"}
"""Parameters that name a run or a class (``cls``: a class's record, its members' runs and folders; ``new_run``:
a run to record into; ``parent``, ``init_from``: a run to learn from; ``run``: a whole run record, whose id the
function reads or writes through; a ``teacher`` is a person here)."""

__all__ = ["World", "Door", "doors", "refused", "Refused", "CLI_PRIVILEGE", "INTERNAL", "OWNER_INTERNAL", "ROW_WRITERS", "SENSITIVE_CLI", "ID_PARAMS",
           "READER_MAY",
           "LayerLabError"]
