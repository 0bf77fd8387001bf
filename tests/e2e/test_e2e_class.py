"""End-to-end: a class on one server. A teacher and three students in separate browser contexts: the teacher
opens a shared link (the graph arrives node for node), creates a class from it; the students join with the
code, get the starter and press Train this network; the teacher sees their runs and the leaderboard and stops a
runaway job; a student sees only their own runs.

The server has its own workspace with the teacher listed in ``LAYERLAB_TEACHERS`` (an anonymous id, set as the
teacher context's cookie).
"""

from __future__ import annotations

import time

import pytest
from e2e_helpers import answer_replace, end_jobs, goto_page, open_app, person, wait_idle
from playwright.sync_api import expect

from builder.data.access import SYSTEM
from builder.graph.share import encode_project
from builder.graph.templates import load_template
from builder.jobs.queue import JobSpec, submit
from builder.runs import classes, owners
from builder.runs.store import RunStore
from builder.training.run_status import FINAL
from tests.helpers import until
from tests.serving import ARTIFACTS, StreamlitServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TEACHER_ID = "1" * 32
STUDENT_IDS = ["2" * 32, "3" * 32, "4" * 32]


@pytest.fixture
def ws(tmp_path):
    """The server's workspace; jobs still live at the end are killed by pid (they are processes of their own)."""
    path = tmp_path / "ws"
    yield path
    end_jobs(path)


def _click(page, key: str) -> None:
    page.locator(f".st-key-{key} button").first.click()
    wait_idle(page)


def test_teacher_and_three_students(browser, ws):
    t0 = time.monotonic()
    teacher = "anon:" + TEACHER_ID
    students = ["anon:" + s for s in STUDENT_IDS]
    starter = load_template("mlp").model_copy(update={
        "name": "Moons starter", "training": {"dataset": "moons", "epochs": 3},
        "dataset": {"kind": "builtin", "name": "moons", "options": {}}})
    env = {"LAYERLAB_WORKSPACE": str(ws), "LAYERLAB_TEACHERS": teacher, "LAYERLAB_MAX_JOBS": "2",
           "LAYERLAB_TORCH_THREADS": "1", "LAYERLAB_LAUNCHER_IDLE_S": "30"}
    with StreamlitServer("app.py", env=env, log_path=ARTIFACTS / "streamlit-class.log") as server:
        store = RunStore(ws, actor=SYSTEM)
        # the teacher opens a shared link in a fresh browser: the graph arrives node for node
        tctx, tpage = person(browser, server.url, TEACHER_ID)
        open_app(tpage, "build?p=" + encode_project(starter))
        saved = until(lambda: (p := owners.load_autosave(ws, teacher)) and p.name == starter.name and p,
                       "the linked project on the teacher's canvas", page=tpage)
        assert [(n.id, n.type, n.params) for n in saved.graph.nodes] == \
            [(n.id, n.type, n.params) for n in starter.graph.nodes]
        assert [(e.source, e.target) for e in saved.graph.edges] == [(e.source, e.target) for e in starter.graph.edges]
        goto_page(tpage, "Classes")
        tpage.get_by_label("Class name").fill("ML 101")
        tpage.get_by_label("Class name").press("Tab")
        _click(tpage, "ll_class_create")
        (cls,) = until(lambda: classes.list_classes(ws, teacher=teacher), "the class", page=tpage)
        # a student who joins shows in the class's head on its own, before any run (it read "Students 0" beside a
        # leaderboard of three students: the count was drawn once, outside the part of the page that refreshes)
        classes.join_class(ws, cls["code"], students[0])  # joins again in the browser below
        students_metric = tpage.locator("[data-testid=stMetric]", has_text="Students")
        expect(students_metric.locator("[data-testid=stMetricValue]")).to_have_text("1", timeout=30_000)

        # three students join with the link's code, get the starter and press Train this network
        people = []
        for anon in STUDENT_IDS:
            ctx, page = person(browser, server.url, anon)
            open_app(page, f"classes?join={cls['code']}")
            page.locator("button", has_text="Join class").first.click()
            answer_replace(page, confirm=False)  # their first-visit CNN, untouched, is replaced without a question
            # the starter (marked with the class) is the student's project before they train it
            until(lambda a=anon: (p := owners.load_autosave(ws, "anon:" + a)) and p.name == starter.name
                  and (p.training or {}).get("class_id") == cls["id"], "the class's starter on the canvas",
                  page=page, state=lambda a=anon: owners.load_autosave(ws, "anon:" + a))
            goto_page(page, "Build")
            page.locator(".st-key-ll_train_this button").first.click()
            try:
                page.wait_for_selector("h1:has-text('Train')", timeout=30_000)
            except Exception:
                page.screenshot(path=str(ARTIFACTS / "class-train-this.png"), full_page=True)
                pytest.fail("Train this network did not land on Train: "
                            + page.locator("[data-testid=stMain]").inner_text()[:1500])
            people.append((ctx, page))
        assert sorted(classes.get_class(ws, cls["id"], SYSTEM)["members"]) == sorted(students)
        runs = {s: until(lambda s=s: store.list_runs(owner=s), f"a run of {s}")[0]["id"] for s in students}
        for s in students[:2]:
            until(lambda s=s: store.get(runs[s])["status"] in FINAL, f"run of {s} to end", timeout=45)
        # the third student's runaway job (many epochs), which the teacher stops
        runaway = submit(store, JobSpec(project=classes.starter_project(cls).model_dump(mode="json"), dataset="moons",
                                        config={"epochs": 5000, "early_stopping": None}, owner=students[2],
                                        name="runaway"))  # early stopping off: it runs until the teacher stops it
        # the teacher's page is live: the new job shows up with its Stop button without a reload
        tpage.wait_for_selector(f".st-key-ll_class_stop_{runaway} button", timeout=30_000)
        # every member's run of the starter is recorded for the class, and the teacher's page lists them all
        shown = [*runs.values(), runaway]
        assert [store.get(r).get("class_id") for r in shown] == [cls["id"]] * len(shown)

        def listed() -> bool:  # the page follows the class on its own
            return all(r in tpage.locator("[data-testid=stMain]").inner_text() for r in shown)

        until(listed, "every class run on the teacher's page", timeout=120, poll=1.0, page=tpage,
              state=lambda: [r for r in shown if r not in tpage.locator("[data-testid=stMain]").inner_text()])
        text = tpage.locator("[data-testid=stMain]").inner_text()
        assert "Leaderboard" in text and "student 1" in text and "student 2" in text
        _click(tpage, f"ll_class_stop_{runaway}")
        until(lambda: store.get(runaway)["status"] in FINAL, "the runaway job to stop", timeout=30)
        assert store.get(runaway)["status"] == "stopped"
        # its student is told who stopped it, by the teacher's pseudonym (Train shows the graph's newest run)
        spage = people[2][1]
        open_app(spage, "train")
        until(lambda: "stopped by your teacher" in spage.locator("[data-testid=stMain]").inner_text(),
              "the student's Train page naming the teacher's stop", timeout=60, page=spage,
              state=lambda: (spage.screenshot(path=str(ARTIFACTS / "class-student-stopped.png"), full_page=True),
                             " ".join(spage.locator("[data-testid=stMain]").inner_text().split())[:1200])[1])
        assert owners.pseudonym(ws, teacher) in spage.locator("[data-testid=stMain]").inner_text()

        # a student sees only their own runs: a link to another student's run is answered "no run of yours"
        page = people[0][1]
        open_app(page, f"runs?run={runs[students[1]]}")
        assert "of yours" in page.locator("[data-testid=stMain]").inner_text()
        open_app(page, f"runs?run={runs[students[0]]}")
        assert "of yours" not in page.locator("[data-testid=stMain]").inner_text()
        for ctx, _ in people:
            ctx.close()
        tctx.close()
    print(f"teacher + 3 students: {time.monotonic() - t0:.1f} s")
