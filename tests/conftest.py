import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import settings

from tests.postgres import PostgresServer, bin_dir

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Streamlit scripts that browser tests serve with `streamlit run`: importing them (as --doctest-modules would) runs
# them in bare mode, where one script's session state leaks into the next.
collect_ignore = ["canvas/demo_app.py", "canvas/big_app.py"]

# One warm job launcher per test process (builder.jobs.warm, $LAYERLAB_LAUNCHER_DIR): started when the session
# starts, it forks the jobs of every test's workspace, and of the app servers and CLI processes the tests start
# (they inherit the setting), so a job costs a fork instead of ~5 CPU-s of imports (torch, the pipeline,
# scikit-learn's loaders). The launcher's own tests use per-workspace launchers (they unset it).
os.environ.setdefault("LAYERLAB_LAUNCHER_IDLE_S", "3600")

# One person's live sandboxed children (model probes, import workers) are capped (builder.process.launcher,
# default 4). The suite opens hundreds of page sessions as one owner in one process, and a session's probe ends
# when the session is collected, which a long test process may delay; the cap's own tests set it low.
os.environ.setdefault("LAYERLAB_SANDBOX_PER_OWNER", "64")

# Hypothesis profiles. Tests that are slow per example set their own budget (`max_examples=budget(n)`,
# tests/fuzz_budget.py: n examples, 25 n under `fuzz`); the others take it from the profile:
#   ci   (selected under CI=true): 200 examples per property, derandomised so a CI failure reproduces (and
#        print_blob, to replay one); CI checks every property, `make fuzz` carries the volume;
#   fuzz (`make fuzz`, or --hypothesis-profile fuzz): 50,000 fresh random examples for every hypothesis test
#        without its own budget (25 times its budget for the others) in tests/ (validation-only fuzz, escaping,
#        malformed files, range parsers, ...); the child-process graph fuzzer runs 10,000;
#   dev  (default): 200 fresh random examples.
settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True, print_blob=True)
settings.register_profile("fuzz", max_examples=50_000, deadline=None, print_blob=True)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(autouse=True)
def _environment_restored():
    """Every test leaves ``os.environ`` as it found it. Code under test may set variables for the job processes
    it starts (``--threads`` sets LAYERLAB_TORCH_THREADS; tests set MLFLOW_TRACKING_URI, the local user's
    tracker); left behind, they reach every later test of the worker and the app servers it starts (a leaked
    tracking URI turned MLflow on for a browser test's server)."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Small models train fastest on one thread, and far faster than two when pytest-xdist shares the CPU."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True, scope="session")
def _shared_launcher():
    """Start this process's shared job launcher ahead of the first job; end it (and wait for it) at the end. Each
    test process (each pytest-xdist worker) has its own: its private folder is made here, not inherited."""
    from builder.jobs import warm

    home = Path(tempfile.mkdtemp(prefix="ll-launch-"))
    saved = os.environ.get("LAYERLAB_LAUNCHER_DIR")
    os.environ["LAYERLAB_LAUNCHER_DIR"] = str(home)
    warm.warm_launcher(home)
    yield
    if saved is None:
        os.environ.pop("LAYERLAB_LAUNCHER_DIR", None)
    else:
        os.environ["LAYERLAB_LAUNCHER_DIR"] = saved
    with contextlib.suppress(OSError, ValueError):
        pid = int((home / warm.LAUNCHER_PID).read_text())
        os.kill(pid, signal.SIGTERM)
        end = time.monotonic() + 30
        while time.monotonic() < end and warm.pid_alive(pid):  # reaped by the thread that started it
            time.sleep(0.05)
    log = home / warm.LAUNCHER_LOG
    if log.is_file() and log.stat().st_size:  # kept for a failure's diagnosis (CI uploads test-artifacts/)
        (ROOT / "test-artifacts").mkdir(exist_ok=True)
        shutil.copy(log, ROOT / "test-artifacts" / f"launcher-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}.log")
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A 4 MiB tmpfs mounted for the test (unmounted after it): a disk to fill (:func:`tests.helpers.fill_disk`)."""
    d = tmp_path / "disk"
    d.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root (the CI containers run as root)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(d)], check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


@pytest.fixture
def example_project() -> dict:
    """The hand-written example from the project-file documentation."""
    return {"format": "layerlab", "version": 1,
            "graph": {
                "nodes": [{"id": "x", "type": "Input", "params": {"shape": [1, 8, 8]}},
                          {"id": "c1", "type": "Conv2d", "params": {"out_channels": 16, "kernel_size": 3, "padding": 1}},
                          {"id": "r1", "type": "ReLU"},
                          {"id": "sum", "type": "Add"},
                          {"id": "f", "type": "Flatten"},
                          {"id": "fc", "type": "Linear", "params": {"out_features": 10}}],
                "edges": [{"source": "x", "target": "c1"}, {"source": "c1", "target": "r1"},
                          {"source": "r1", "target": "sum"}, {"source": "c1", "target": "sum"},
                          {"source": "sum", "target": "f"}, {"source": "f", "target": "fc"}]}}


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    """A fresh LayerLab workspace (``LAYERLAB_WORKSPACE``) for the app and the CLI; runs of others hidden."""
    path = tmp_path / "ws"
    monkeypatch.setenv("LAYERLAB_WORKSPACE", str(path))
    monkeypatch.delenv("LAYERLAB_SHARED_RUNS", raising=False)
    return path


@pytest.fixture
def job_workspace(workspace, monkeypatch) -> Path:
    """A workspace for tests that start training jobs: one torch thread per job, two jobs at once (forked by the
    session's shared launcher)."""
    monkeypatch.setenv("LAYERLAB_TORCH_THREADS", "1")
    monkeypatch.setenv("LAYERLAB_MAX_JOBS", "2")
    return workspace


# PostgreSQL: one server per test session (tests/postgres.py), a fresh database per test. Under CI=true a missing
# PostgreSQL fails the tests; elsewhere they skip and say why.

def _missing(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why}; CI runs the PostgreSQL tests (.ci/run installs Debian's postgresql package)")
    pytest.skip(f"{why}: install Debian's postgresql package (apt-get install postgresql) to run them")


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL server for the whole session (started on first use, ~2 s)."""
    bindir = bin_dir()
    if bindir is None:
        _missing("PostgreSQL is not installed (no pg_ctl)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _missing("psycopg is not installed (layerlab[cluster])")
    server = PostgresServer(bindir)
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server) -> str:
    """The URL of a new empty database on the session's server."""
    return pg_server.database()


def pytest_collection_modifyitems(config, items):
    """Modules with browser or slow (training) tests first, most such tests first; the rest in collection order.

    ``make test`` hands whole files to two workers (``--dist loadfile --no-loadscope-reorder``): a long file
    handed out last leaves one worker idle while the other finishes it (xdist's default order, by test count,
    put the one-test browser journeys and the Ray cluster's module last). Small files at the end let both
    workers finish together. A module's tests stay together and in their order."""
    heavy: dict[str, int] = {}
    for item in items:
        n = heavy.setdefault(item.nodeid.split("::")[0], 0)
        if item.get_closest_marker("browser") or item.get_closest_marker("slow"):
            heavy[item.nodeid.split("::")[0]] = n + 1
    first = {m: i for i, m in enumerate(heavy)}
    items.sort(key=lambda it: (-heavy[it.nodeid.split("::")[0]], first[it.nodeid.split("::")[0]]))


# CPU seconds per test file (user + sys of the test process, the children it reaped, and the shared launcher with
# the jobs it forked and reaped): each worker writes test-artifacts/cpu-<worker>.tsv, and the summary names the
# files that cost most (issue 30: the suite's CPU budget). The sandbox's zygote and the children it forked and
# reaped count likewise. Processes reaped by another process's exit (a browser under its driver) count where that
# process ends.
_CPU: dict[str, float] = {}
_CPU_TESTS: dict[str, float] = {}


def _cpu_now() -> float:
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    home = os.environ.get("LAYERLAB_LAUNCHER_DIR")
    with contextlib.suppress(OSError, ValueError, IndexError, TypeError):  # no launcher (yet): its share is 0
        from builder.jobs import warm

        total += _proc_cpu(int((Path(home) / warm.LAUNCHER_PID).read_text()))
    zyg = getattr(sys.modules.get("builder.process.zygote"), "_ZYGOTE", None)
    with contextlib.suppress(OSError, ValueError, IndexError, AttributeError):  # the sandbox's zygote, likewise
        total += _proc_cpu(zyg.proc.pid)
    return total


def _proc_cpu(pid: int) -> float:
    """A live process's CPU seconds and those of the children it reaped (utime stime cutime cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


_WALL: dict[str, float] = {}  # wall seconds per test file in this worker (for the order above: wall-<worker>.tsv)
_LAST_END: list[float] = []  # when this worker's last test ended (time.time()): how long the other one idled


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    start, wall = _cpu_now(), time.monotonic()
    yield
    path = item.nodeid.split("::")[0]
    # the session's end stops the launcher inside the last test: its share leaves the sum (never below 0)
    spent = max(0.0, _cpu_now() - start)
    _CPU[path] = _CPU.get(path, 0.0) + spent
    _CPU_TESTS[item.nodeid] = spent
    _WALL[path] = _WALL.get(path, 0.0) + time.monotonic() - wall
    _LAST_END[:] = [time.time()]


def pytest_sessionfinish(session, exitstatus):
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if "builder.process.zygote" in sys.modules:  # reap the sandbox's zygote, which reaped its forked children
        sys.modules["builder.process.zygote"].shutdown()
    if _CPU:
        (ROOT / "test-artifacts").mkdir(exist_ok=True)
        rows = sorted(_CPU.items(), key=lambda kv: -kv[1])
        (ROOT / "test-artifacts" / f"cpu-{worker or 'main'}.tsv").write_text(
            "".join(f"{cpu:.1f}\t{path}\n" for path, cpu in rows))
        tests = sorted(_CPU_TESTS.items(), key=lambda kv: -kv[1])  # per test, for finding what costs most
        (ROOT / "test-artifacts" / f"cpu-tests-{worker or 'main'}.tsv").write_text(
            "".join(f"{cpu:.2f}\t{nodeid}\n" for nodeid, cpu in tests))
        walls = sorted(_WALL.items(), key=lambda kv: -kv[1])
        (ROOT / "test-artifacts" / f"cpu-wall-{worker or 'main'}.tsv").write_text(
            f"{_LAST_END[0] if _LAST_END else 0:.1f}\tEND\n" + "".join(f"{w:.1f}\t{path}\n" for path, w in walls))


def pytest_configure(config):
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # the controller: this session's tables only
        for old in (ROOT / "test-artifacts").glob("cpu-*.tsv"):
            old.unlink()
    from builder.process import zygote

    # a test process starts many sandboxed children, as a server does: its first forks from the zygote it starts
    # (tests/process/test_zygote.py sets it back to check the one-shot way: a fresh interpreter first, and the
    # zygote at the second child, two cold starts where one does)
    zygote._FRESH_LEFT = 0


def pytest_terminal_summary(terminalreporter):
    rows: dict[str, float] = {}
    walls: dict[str, float] = {}
    ends: list[float] = []
    for table in (ROOT / "test-artifacts").glob("cpu-wall-*.tsv"):
        for line in table.read_text().splitlines():
            wall, path = line.split("\t", 1)
            if path == "END":
                ends.append(float(wall))
            else:
                walls[path] = walls.get(path, 0.0) + float(wall)
    for table in (ROOT / "test-artifacts").glob("cpu-*.tsv"):
        if table.name.startswith(("cpu-tests-", "cpu-wall-")):
            continue  # the per-test and wall tables
        for line in table.read_text().splitlines():
            cpu, path = line.split("\t", 1)
            rows[path] = rows.get(path, 0.0) + float(cpu)
    if len(rows) > 1:
        top = sorted(rows.items(), key=lambda kv: -kv[1])[:25]
        terminalreporter.write_sep("=", f"CPU seconds per test file: {sum(rows.values()):.0f} in all, the top 25")
        for path, cpu in top:
            terminalreporter.write_line(f"{cpu:8.1f}  {path}")
    if len(walls) > 1:
        top = sorted(walls.items(), key=lambda kv: -kv[1])[:15]
        idle = f"; the workers' last tests ended {max(ends) - min(ends):.0f} s apart" if len(ends) > 1 else ""
        terminalreporter.write_sep("=", f"wall seconds per test file, the top 15{idle}")
        for path, wall in top:
            terminalreporter.write_line(f"{wall:8.1f}  {path}")
