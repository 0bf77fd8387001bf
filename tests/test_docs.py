"""The documentation site and its examples: the site builds in strict mode, and every example in ``docs/`` and
``README.md`` runs, so a stale example fails the suite.

Each fence of a page is one of:

- ``python``: executed; the fences of one page run in order in one namespace (a later one uses the names an
  earlier one defined), in the page's own temporary folder with its own workspace (``LAYERLAB_WORKSPACE``);
- ``bash``: run as a script (``set -euo pipefail``) in that folder, ``layerlab`` being ``python -m builder`` of
  this checkout and ``python`` this interpreter; bash and python fences of a page run in document order;
- ``json``: parsed (a fragment starting with ``"key":`` is parsed inside braces);
- ``text``: output or a synopsis; a ``$ `` prompt line is refused there (a command belongs in a fence that runs).

A ``bash`` or ``python`` fence that must not run (it starts the app, runs the suite, needs a GPU or several
machines) has ``<!-- no-run: why -->`` on the line before it. They are counted (:data:`NO_RUN`), so adding one
is a visible change to this file. Pages whose examples run are listed by the collector itself, never by hand.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz_budget import budget

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PAGES = [README, *sorted(p for p in DOCS.rglob("*.md"))]

RUN_LANGS = ("python", "bash")
KNOWN_LANGS = (*RUN_LANGS, "json", "text")
#: fences marked ``<!-- no-run: ... -->``: the two set-up commands (README, the site's home), ``make app`` in the
#: first tutorial, the class server, the development commands, the GPU commands, and scale-out's four torchrun and
#: multi-machine commands. Change it only together with the fence you add or remove.
NO_RUN = 13
NO_RUN_MARK = re.compile(r"^<!--\s*no-run:\s*(\S.*?)\s*-->$")
README_LIMIT = 15_000


@dataclass(frozen=True)
class Fence:
    """One fenced code block of a Markdown page."""

    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    body: str
    no_run: str | None  # the reason given in the <!-- no-run: ... --> mark before it, if any

    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def fences(page: Path) -> list[Fence]:
    """The fenced blocks of ``page`` (``` or ~~~ fences, indented ones included), in document order."""
    out: list[Fence] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)(`{3,}|~{3,})\s*([^\s`]*)", lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.groups()
        prev = next((lines[k].strip() for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        mark = NO_RUN_MARK.match(prev)
        body, j = [], i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j])
            j += 1
        out.append(Fence(page, i + 1, lang, "\n".join(body) + "\n", mark.group(1) if mark else None))
        i = j + 1
    return out


ALL = [f for p in PAGES for f in fences(p)]
RUNNABLE_PAGES = sorted({f.page for f in ALL if f.lang in RUN_LANGS and not f.no_run})


def test_collector_finds_the_examples():
    """The collector sees fences of every kind (so the checks below cannot pass on an empty list)."""
    langs = {f.lang for f in ALL}
    assert set(KNOWN_LANGS) <= langs
    assert len(RUNNABLE_PAGES) >= 8
    sample = DOCS / "reference" / "project-file.md"
    assert [f.lang for f in fences(sample)][:3] == ["json", "python", "python"]


def test_every_fence_has_a_known_kind():
    bad = [f"{f.where()}: ```{f.lang or '(no language)'}" for f in ALL if f.lang not in KNOWN_LANGS]
    assert not bad, f"fences must be one of {KNOWN_LANGS}:\n" + "\n".join(bad)
    marked = [f.where() for f in ALL if f.no_run and f.lang not in RUN_LANGS]
    assert not marked, f"a no-run mark belongs before a bash or python fence: {marked}"


def test_no_run_fences_are_counted():
    skipped = [f"{f.where()} ({f.no_run})" for f in ALL if f.no_run]
    assert len(skipped) == NO_RUN, (f"{len(skipped)} fences are marked no-run, NO_RUN says {NO_RUN}; an example "
                                    "that can run should run:\n" + "\n".join(skipped))


def test_text_fences_hold_no_commands_to_run():
    prompts = [f"{f.where()}: {line}" for f in ALL if f.lang == "text"
               for line in f.body.splitlines() if line.startswith("$ ")]
    assert not prompts, "a command shown with a prompt belongs in a ```bash fence (which runs):\n" + "\n".join(prompts)


def test_json_fences_parse():
    bad = []
    for f in (f for f in ALL if f.lang == "json"):
        text = f.body.strip()
        try:
            json.loads("{" + text + "}" if text.startswith('"') else text)
        except json.JSONDecodeError as e:
            bad.append(f"{f.where()}: {e}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch):
    workspace = tmp_path / "ws"
    # the suite's warm job launcher (LAYERLAB_LAUNCHER_DIR, tests/conftest.py) forks a page's jobs (search.md's
    # trials), as it does those of every CLI process the tests start; no launcher of the page's own is started
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LAYERLAB_", "MLFLOW_")) or k in ("LAYERLAB_CHROMIUM", "LAYERLAB_LAUNCHER_DIR")}
    env.update(LAYERLAB_WORKSPACE=str(workspace), LAYERLAB_LAUNCHER_IDLE_S="0", LAYERLAB_TORCH_THREADS="1",
               LAYERLAB_MAX_JOBS="2", PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]))
    for k in set(os.environ) - set(env):
        monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    prelude = textwrap.dedent(f"""\
        set -euo pipefail
        layerlab() {{ {sys.executable!r} -m builder "$@"; }}
        python() {{ {sys.executable!r} "$@"; }}
        """)
    namespace: dict = {"__name__": "__main__"}
    for f in fences(page):
        if f.lang not in RUN_LANGS or f.no_run:
            continue
        if f.lang == "bash":
            proc = subprocess.run(["bash", "-c", prelude + f.body], cwd=tmp_path, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
            assert proc.returncode == 0, f"{f.where()} exited {proc.returncode}:\n{proc.stdout[-4000:]}"
        else:
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    exec(compile(f.body, f.where(), "exec"), namespace)  # noqa: S102 - the page's example
            except Exception as e:
                raise AssertionError(f"{f.where()} raised {type(e).__name__}: {e}\n{out.getvalue()[-4000:]}") from e


def test_readme_is_a_landing_page():
    """Under 15,000 characters, the two set-up commands, a screenshot, and links into the site."""
    text = README.read_text(encoding="utf-8")
    assert len(text) < README_LIMIT, f"README.md has {len(text):,} characters; move detail into docs/"
    setup = [f for f in fences(README) if f.lang == "bash"]
    assert [f.body.split()[:2] for f in setup][:1] == [["make", "app"]] and "make test" in setup[0].body
    assert re.search(r"!\[[^\]]+\]\(docs/screenshots/[\w-]+\.png\)", text)
    links = re.findall(r"\]\((docs/[^)#\s]+)", text)
    assert len({link for link in links if link.endswith(".md")}) >= 8
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, f"README links to missing files: {missing}"


#: a path into the repository written in code spans of the docs (``builder/runs/jobs.py``, ``tests/...``)
_REPO_PATH = re.compile(r"`((?:builder|app_pages|tests|bench|tools|docs|frontend)/[\w./-]*[\w/])`")


def test_paths_the_docs_name_exist():
    """Every repository file or folder the pages name in a code span exists (a claim such as "tests/x.py checks
    it" goes stale when x.py goes)."""
    missing = sorted({f"{page.relative_to(ROOT)}: {m}" for page in PAGES
                      for m in _REPO_PATH.findall(page.read_text(encoding="utf-8"))
                      if "*" not in m and not (ROOT / m).exists()})
    assert not missing, "\n".join(missing)


def _env_names_read() -> set[str]:
    """Every ``LAYERLAB_*`` variable the code reads: full names in the library, the pages and the tools, and
    the ones the test suite reads from its environment."""
    names: set[str] = set()
    for top in ("builder", "app_pages", "tools", "bench"):
        for path in (ROOT / top).rglob("*.py"):
            names |= set(re.findall(r"LAYERLAB_[A-Z0-9_]*[A-Z0-9]", path.read_text(encoding="utf-8")))
    names |= set(re.findall(r"LAYERLAB_[A-Z0-9_]*[A-Z0-9]", (ROOT / "app.py").read_text(encoding="utf-8")))
    read = re.compile(r"""(?:environ\.get\(|environ\[|getenv\(|setenv\(|env=\{)\s*["'](LAYERLAB_[A-Z0-9_]*[A-Z0-9])""")
    for path in (ROOT / "tests").rglob("*.py"):
        if path.name != Path(__file__).name:
            names |= set(read.findall(path.read_text(encoding="utf-8")))
    return names - {"LAYERLAB_X", "LAYERLAB_TEST_SECRET"}  # test fixtures' own markers, not settings


def test_environment_page_lists_every_variable():
    names = _env_names_read()
    assert {"LAYERLAB_WORKSPACE", "LAYERLAB_MAX_JOBS", "LAYERLAB_CHROMIUM"} <= names  # the scan works
    page = (DOCS / "reference" / "environment.md").read_text(encoding="utf-8")
    # a prefix the code builds names from (LAYERLAB_JOB for LAYERLAB_JOB_MEMORY_MB, ...) is covered by them
    missing = sorted(n for n in names if not re.search(rf"`{n}(?:_\*)?`|\b{n}_[A-Z]", page))
    assert not missing, f"docs/reference/environment.md does not list: {missing}"


def test_site_builds_strictly(tmp_path: Path):
    """``mkdocs build --strict``: no warning (broken link, missing page, bad docstring), as ``make docs`` runs it."""
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert "WARNING" not in proc.stdout, proc.stdout[-6000:]
    cli = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    assert "usage: layerlab train" in cli and "--init-from" in cli  # generated from the parser at build time
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    assert "compile_graph" in api and "load_project" in api


_LINE = st.text(st.characters(codec="utf-8", exclude_characters="`~\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"),
                max_size=30)


@settings(max_examples=budget(60), deadline=None)
@given(st.lists(st.tuples(st.sampled_from(KNOWN_LANGS), st.lists(_LINE, max_size=4), st.booleans(), _LINE),
                max_size=5))
def test_collector_reads_back_what_a_page_holds(tmp_path_factory, blocks):
    """Fences written into a page (with prose between them and optional no-run marks) come back in order, each
    with its language, body and mark, so the runner neither drops nor merges an example."""
    parts = []
    for lang, body, no_run, prose in blocks:
        parts.append("Some prose " + prose.strip().lstrip("<#-*>!") + "\n")
        if no_run:
            parts.append("<!-- no-run: a reason -->")
        parts.append(f"```{lang}\n" + "".join(line + "\n" for line in body) + "```\n")
    page = tmp_path_factory.mktemp("page") / "page.md"
    page.write_text("\n".join(parts), encoding="utf-8")
    got = fences(page)
    assert [(f.lang, f.body, f.no_run) for f in got] == [
        (lang, "".join(line + "\n" for line in body) + ("" if body else "\n"), "a reason" if no_run else None)
        for lang, body, no_run, _ in blocks]


def test_reference_names_every_dataset_and_template():
    """The hand-written reference keeps up with the registries: every built-in dataset is named on the datasets
    page and every template on the project-file page (a new one added without its line fails here)."""
    import builder

    datasets = (DOCS / "reference" / "datasets.md").read_text(encoding="utf-8")
    templates = (DOCS / "reference" / "project-file.md").read_text(encoding="utf-8")
    missing = [f"dataset {d['name']}" for d in builder.list_datasets() if f"`{d['name']}`" not in datasets]
    missing += [f"template {t['name']}" for t in builder.list_templates() if f"`{t['name']}`" not in templates]
    assert not missing, f"not in docs/reference: {missing}"
