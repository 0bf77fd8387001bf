"""Jobs on a real local Ray cluster (ray.cluster_utils.Cluster: a head and fake nodes declaring one GPU each,
all on this machine) with the run store on a real PostgreSQL (tests/conftest.py): packing by LayerLab's
memory estimate, the running quota in front of Ray, pause/resume/stop through the control row, a server process
killed (its jobs interrupted by their heartbeats, resumed from another server), a node removed mid-run
(interrupted, then resumed on another node), and a cluster that cannot be reached. One cluster serves the module;
its nodes' jobs record their runs under another host name (``LAYERLAB_HOST``), as on a real cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from builder.data.access import SYSTEM
from builder.errors import RunStoreError
from builder.graph.templates import load_template
from builder.jobs import executors
from builder.jobs import queue as jobs
from builder.jobs.quotas import QuotaError
from builder.runs.store import RunStore
from builder.training.run_status import ENV_BEAT_S, ENV_HOST, ENV_STALE_S, pid_alive

pytestmark = pytest.mark.slow  # jobs train on the cluster (and the module runs among the first: tests/conftest.py)

ROOT = Path(__file__).resolve().parents[2]
NODE_HOST = "ray-node"  # the host name of the fake nodes' jobs (LAYERLAB_HOST): the servers tell them by heartbeat
GPU_GB = 1.5  # one fake GPU's memory: a small MLP's estimate (600 MiB CUDA context + model) is ~0.43 of it


@pytest.fixture(scope="module")
def ray_cluster():
    """One Ray cluster for the module: a head without resources and two nodes with 2 CPUs and 1 GPU each."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # every Ray process on 127.0.0.1 (read when ray loads)
    try:
        import ray
        from ray.cluster_utils import Cluster
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("Ray is not installed; CI runs the cluster tests (layerlab[cluster], make install)")
        pytest.skip("Ray is not installed: pip install 'layerlab[cluster]' to run the cluster tests")
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), old) if p)  # the workers import builder
    args = {"num_cpus": 2, "num_gpus": 1, "object_store_memory": 80 * 2**20, "node_ip_address": "127.0.0.1",
            "env_vars": {ENV_HOST: NODE_HOST}}  # the nodes' jobs record their runs as another machine's
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "num_gpus": 0, "include_dashboard": False,
                                                            "object_store_memory": 80 * 2**20,
                                                            "node_ip_address": "127.0.0.1"})
    for _ in range(2):
        cluster.add_node(**args)
    cluster.wait_for_nodes()
    cluster.node_args = args
    yield cluster
    executors.close_all()
    ray.shutdown()
    cluster.shutdown()
    if old is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old


def _two_nodes(cluster) -> None:
    """The cluster's two worker nodes, one started again if a test removed one (only then: a node start costs
    a raylet, its agents and its first Ray workers)."""
    while len(cluster.list_all_nodes()) < 3:  # the head and two nodes
        cluster.add_node(**cluster.node_args)
    cluster.wait_for_nodes()


@pytest.fixture
def store(ray_cluster, pg_url, tmp_path, monkeypatch) -> RunStore:
    _two_nodes(ray_cluster)
    monkeypatch.setenv("LAYERLAB_DB_URL", pg_url)
    monkeypatch.setenv(executors.ENV_RAY_ADDRESS, ray_cluster.address)
    monkeypatch.setenv(executors.ENV_GPU_MEMORY, str(GPU_GB))
    return RunStore(tmp_path / "ws", actor=SYSTEM)


def _spec(owner: str, epochs: int = 2, n: int = 200, **config) -> jobs.JobSpec:
    return jobs.JobSpec(project=load_template("mlp").model_dump(), dataset="moons", dataset_options={"n_samples": n},
                        config={"epochs": epochs, "batch_size": 32, "early_stopping": None, **config}, owner=owner)


# the timeout bounds a hang, it times nothing: at load 12-26 on two cores the five packed jobs took 221 s and more
def _until(what, timeout: float = 480.0, every: float = 0.2, run: tuple | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(every)
    seen = ""
    if run is not None:  # the run's row and the end of its job's log
        store, rid = run
        row = store.get(rid)
        seen = (f"\nstatus {row['status']!r}, control {row['control']!r}, message {row['message']!r}\n"
                + store.folder(rid).job_log.read_text(errors="replace")[-3000:])
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what.__doc__ or what}{seen}")


def _statuses(store: RunStore, ids: list[str]) -> dict[str, str]:
    return {r: store.get(r)["status"] for r in ids}


def test_jobs_are_packed_on_the_cluster_by_their_memory_estimate(store):
    ids = [jobs.submit(store, _spec(owner, epochs=1, n=100)) for owner in
           ("user:ann", "user:ann", "user:ann", "user:bob", "user:bob")]
    most = 0

    def finished() -> bool:
        """every job finished"""
        nonlocal most
        st = _statuses(store, ids)
        most = max(most, sum(s == "running" for s in st.values()))
        return all(s in ("finished", "failed", "stopped", "interrupted") for s in st.values())

    _until(finished)
    assert set(_statuses(store, ids).values()) == {"finished"}
    nodes = {n.unique_id for n in ray_nodes(store)}
    for rid in ids:
        env = store.get(rid)["environment"]
        frac = env["resources"]["num_gpus"]
        assert env["executor"] == "ray" and 1 / 3 < frac <= 0.5 and env["ray_node"] in nodes
    assert most <= 4  # two GPUs, two jobs' estimates per GPU


def ray_nodes(store):
    import ray

    class _N:
        def __init__(self, d):
            self.unique_id = d["NodeID"]

    return [_N(d) for d in ray.nodes() if d["Alive"]]


def test_quotas_hold_jobs_in_front_of_ray_and_pause_resume_stop_go_through_the_control_row(store, monkeypatch):
    monkeypatch.setenv("LAYERLAB_QUOTA_RUNNING", "1")
    monkeypatch.setenv("LAYERLAB_QUOTA_QUEUED", "1")
    first = jobs.submit(store, _spec("user:cy", epochs=20_000, n=400))
    _until(lambda: store.get(first)["epochs_done"] >= 1)
    second = jobs.submit(store, _spec("user:cy", epochs=1, n=100))
    ex = executors.executor_for(store.workspace)
    time.sleep(2 * executors.DISPATCH_S)  # rounds of the queue pass (a state that must not change)
    assert store.get(second)["status"] == "queued" and second in [j.run_id for j in ex._pending]
    with pytest.raises(QuotaError, match="at most 1 job"):
        jobs.submit(store, _spec("user:cy"))
    jobs.request(store, first, "pause")
    _until(lambda: store.get(first)["status"] == "paused", run=(store, first))
    jobs.request(store, first, "resume")
    _until(lambda: store.get(first)["status"] == "running", run=(store, first))
    jobs.request(store, first, "stop")
    _until(lambda: store.get(first)["status"] == "stopped", run=(store, first))
    _until(lambda: store.get(second)["status"] == "finished", run=(store, second))  # its turn came when the first stopped


# server A: submits a long job and a job its running quota holds in its queue, says their ids, waits to be killed
_SERVER_A = """
import json, sys, time
from builder.data.access import SYSTEM
from builder.graph.templates import load_template
from builder.jobs import queue as jobs
from builder.runs.store import RunStore
store = RunStore(sys.argv[1], actor=SYSTEM)
def spec(epochs, n):
    return jobs.JobSpec(project=load_template("mlp").model_dump(), dataset="moons", dataset_options={"n_samples": n},
                        config={"epochs": epochs, "batch_size": 32, "early_stopping": None}, owner="user:dan")
first = jobs.submit(store, spec(500, 400))
while store.get(first)["status"] != "running":  # its running quota of 1 then holds the second in the queue
    time.sleep(0.2)
print(json.dumps([first, jobs.submit(store, spec(1, 100))]), flush=True)
time.sleep(3600)
"""
BEAT, STALE = 1.0, 10.0  # seconds: the test's heartbeat and orphan intervals (defaults 15 and 120)


def test_a_dead_servers_jobs_end_with_it_and_another_server_resumes_them(store, ray_cluster, monkeypatch):
    """What docs/scale-out.md promises when an app server dies: Ray ends the tasks of a driver that died, so its
    job on a node ends with it; that job and the one waiting in its queue stop beating, any other server's read
    marks them interrupted once their heartbeats are older than the orphan interval, and that server resumes
    them on the cluster (from the checkpoint)."""
    monkeypatch.setenv(ENV_BEAT_S, str(BEAT))
    monkeypatch.setenv(ENV_STALE_S, str(STALE))
    env = {**os.environ, "PYTHONPATH": str(ROOT), ENV_HOST: "server-a", "LAYERLAB_QUOTA_RUNNING": "1",
           "LAYERLAB_QUOTA_QUEUED": "1"}
    server_a = subprocess.Popen([sys.executable, "-c", _SERVER_A, str(store.workspace)], env=env, cwd=ROOT,
                                stdout=subprocess.PIPE, text=True)
    try:
        training, waiting = json.loads(server_a.stdout.readline())
        _until(lambda: store.get(training)["epochs_done"] >= 1 and store.folder(training).has_checkpoint,
               run=(store, training))
        assert store.get(training)["host"] == NODE_HOST and store.get(waiting)["status"] == "queued"
        pid = store.get(training)["pid"]
    finally:
        server_a.kill()  # the server dies (no cleanup of its own)
        server_a.wait(timeout=60)
    _until(lambda: not pid_alive(pid))  # Ray ended the dead driver's task; the job died with its worker

    def orphaned() -> bool:
        """both of server A's jobs interrupted by server B's reads"""
        RunStore(store.workspace, actor=SYSTEM)  # a read of server B (the Runs page opens the store so)
        return {store.get(r)["status"] for r in (training, waiting)} == {"interrupted"}

    _until(orphaned, every=1.0)
    assert f"its host {NODE_HOST} sent no heartbeat" in store.get(training)["message"]
    assert "its host server-a sent no heartbeat" in store.get(waiting)["message"]
    done = store.get(training)["epochs_done"]
    for rid in (training, waiting):  # server B (this process, its own Ray driver) resumes them
        jobs.submit(store, jobs.JobSpec(project={}, dataset="moons", owner="user:dan", resume_run=rid))
    _until(lambda: store.get(waiting)["status"] == "finished", run=(store, waiting))
    _until(lambda: store.get(training)["status"] == "running" and store.get(training)["epochs_done"] > done,
           run=(store, training))
    jobs.request(store, training, "stop")
    _until(lambda: store.get(training)["status"] == "stopped", run=(store, training))


def test_a_job_whose_node_dies_is_interrupted_and_resumes_on_another_node(store, ray_cluster):
    rid = jobs.submit(store, _spec("user:eve", epochs=20_000, n=400))
    _until(lambda: store.get(rid)["epochs_done"] >= 2 and store.folder(rid).has_checkpoint)
    node_id = store.get(rid)["environment"]["ray_node"]
    node = next(n for n in ray_cluster.list_all_nodes() if n.node_id == node_id)
    ray_cluster.remove_node(node)  # the next test that needs two nodes starts one again (the `store` fixture)
    _until(lambda: store.get(rid)["status"] == "interrupted")
    assert "left the Ray cluster" in store.get(rid)["message"]
    done = store.get(rid)["epochs_done"]
    jobs.submit(store, jobs.JobSpec(project={}, dataset="moons", owner="user:eve", resume_run=rid))
    _until(lambda: store.get(rid)["status"] == "running" and store.get(rid)["epochs_done"] > done)
    assert store.get(rid)["environment"]["ray_node"] != node_id
    jobs.request(store, rid, "stop")
    _until(lambda: store.get(rid)["status"] == "stopped")


def test_a_cluster_that_cannot_be_reached_is_a_message(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = ("import sys\nfrom builder.jobs import executors\nexecutors.CONNECT_TIMEOUT_S = 2\n"
            "try:\n    executors._connect(sys.argv[1])\nexcept Exception as e:\n    print(type(e).__name__, e)\n")
    done = subprocess.run([sys.executable, "-c", code, f"127.0.0.1:{port}"], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.stdout.startswith("RunStoreError cannot reach the Ray cluster at 127.0.0.1:"), done.stdout + done.stderr
    assert "Fix:" in done.stdout


def test_ray_needs_a_shared_database(tmp_path, monkeypatch):
    monkeypatch.delenv("LAYERLAB_DB_URL", raising=False)
    monkeypatch.setenv(executors.ENV_RAY_ADDRESS, "10.0.0.1:6379")  # never contacted: refused before
    with pytest.raises(RunStoreError, match="PostgreSQL"):
        executors.executor_for(tmp_path)
