"""Benchmark the Streamlit app in headless Chromium and record the figures in bench/RESULTS.md.

Measures (see the "App (issue 4)" section of RESULTS.md):

1. Train click -> first point on the live loss curve (CNN template on digits), in the browser.
2. Training throughput with the live Train page open / the same training headless (no UI, same torch
   thread setting), median samples/s of epochs 2..N, interleaved rounds.
3. A canvas change on a 100-node graph: time from the mouse-up of a palette drop to the node's Python
   annotation (error badge) being visible, and how many rerun requests the browser sent for it; plus the
   server-side analysis cost (shape inference + annotations) per change.

Every timing and ratio is printed as its median with its spread (p10-p90; min-max below 5 values), after the
conditions line (bench/results.py).

Usage::

    .venv/bin/python bench/bench_app.py            # everything, writes bench/RESULTS.md
    .venv/bin/python bench/bench_app.py --no-write # print only
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from e2e_helpers import curve_points  # noqa: E402  (tests/e2e is on sys.path)

from bench.results import commit, conditions, spread, write_section  # noqa: E402
from tests.serving import StreamlitServer, launch_chromium  # noqa: E402

SECTION = "## App (issue 4)"


# ------------------------------------------------------------------------------------------ server
def Server(workspace: Path) -> StreamlitServer:  # noqa: N802
    """The app on a free port with its own workspace (stopped with ``.close()`` / ``.stop()``)."""
    server = StreamlitServer("app.py", env={"LAYERLAB_WORKSPACE": str(workspace)}, log_path=workspace / "server.log")
    server.close = server.stop
    return server


# ---------------------------------------------------------------------------------------- helpers
def start_training(page, epochs: int) -> tuple[float, str]:
    """Click Start on the Train page; returns (seconds to the first curve point, run id)."""
    from e2e_helpers import goto_page

    goto_page(page, "Train")
    box = page.get_by_label("Epochs", exact=True)
    box.fill(str(epochs))
    box.press("Tab")
    page.wait_for_timeout(500)
    old = _run_id(page)
    t0 = time.perf_counter()
    page.locator("button", has_text="Start training").first.click()
    while _run_id(page) in (old, "") or curve_points(page) == 0:
        if time.perf_counter() - t0 > 60:
            raise RuntimeError("no curve point within 60 s")
        page.wait_for_timeout(20)
    first = time.perf_counter() - t0
    return first, _run_id(page)


def _run_id(page) -> str:
    m = re.search(r"run (\d{8}-\d{6}-[0-9a-f]{6})", page.locator("[data-testid=stMain]").inner_text())
    return m.group(1) if m else ""


HZ = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread of a process."""
    out = {}
    for d in Path(f"/proc/{pid}/task").glob("*"):
        try:
            f = (d / "stat").read_text()
            f = f[f.rindex(")") + 2:].split()
            out[d.name] = (int(f[11]) + int(f[12])) / HZ
        except (OSError, ValueError, IndexError):
            pass
    return out


def chromium_cpu() -> float:
    total = 0.0
    for d in Path("/proc").glob("[0-9]*"):
        try:
            if b"chromium" not in (d / "cmdline").read_bytes():
                continue
            f = (d / "stat").read_text()
            f = f[f.rindex(")") + 2:].split()
            total += (int(f[11]) + int(f[12])) / HZ
        except (OSError, ValueError, IndexError):
            pass
    return total


def wait_finished(page, timeout: float = 600, pid: int | None = None) -> dict[str, float]:
    """Wait for the Test results; returns the last CPU seconds seen per server thread (threads that end
    keep their last reading)."""
    t0 = time.time()
    seen: dict[str, float] = {}
    while time.time() - t0 < timeout:
        if pid is not None:
            seen.update(thread_cpu(pid))
        if "Test results" in page.locator("[data-testid=stMain]").inner_text():
            return seen
        page.wait_for_timeout(250)
    raise RuntimeError("training did not finish")


def epoch_rates(workspace: Path, run_id: str) -> list[float]:
    from builder.data.access import SYSTEM
    from builder.runs.store import RunStore

    eps = RunStore(workspace, actor=SYSTEM).metrics(run_id, "epoch")
    return [e["samples_per_s"] for e in eps[1:] if e.get("samples_per_s")]


HEADLESS = r"""
import json, sys, torch
sys.path.insert(0, sys.argv[3])
from app_pages.ui import torch_threads
torch.set_num_threads(torch_threads())
import builder
from builder.runs.pipeline import run_training
from builder.data.access import SYSTEM
from builder.runs.store import RunStore
res = run_training(builder.load_template("cnn"), "digits", {"epochs": int(sys.argv[2])}, store=RunStore(sys.argv[1], actor=SYSTEM))
eps = RunStore(sys.argv[1], actor=SYSTEM).metrics(res.run_id, "epoch")
print(json.dumps({"rates": [e["samples_per_s"] for e in eps[1:]], "threads": torch.get_num_threads()}))
"""


def headless_rates(workspace: Path, epochs: int) -> tuple[list[float], int]:
    out = subprocess.run([sys.executable, "-c", HEADLESS, str(workspace), str(epochs), str(ROOT)], cwd=ROOT,
                         capture_output=True, text=True, check=True, env={**os.environ})
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return data["rates"], data["threads"]


def hundred_node_project(path: Path) -> None:
    import builder
    from builder.graph.layout import row_layout as layout  # was app_pages.ui.layout (moved to the library)
    from builder.graph.project import Edge, Graph, Node, Project

    nodes = [Node(id="x", type="Input", params={"shape": [64]})]
    edges = []
    prev = "x"
    for i in range(49):
        for nid, typ, params in ((f"fc{i}", "Linear", {"out_features": 64}), (f"act{i}", "ReLU", {})):
            nodes.append(Node(id=nid, type=typ, params=params))
            edges.append(Edge(source=prev, target=nid, id=f"{prev}->{nid}"))
            prev = nid
    nodes.append(Node(id="head", type="Linear", params={"out_features": 10}))
    edges.append(Edge(source=prev, target="head", id=f"{prev}->head"))
    g = layout(Graph(nodes=nodes, edges=edges))
    assert len(g.nodes) == 100 and builder.infer_shapes(g).ok
    path.write_text(Project(name="hundred", graph=g).to_json())


def analysis_cost(repeats: int = 20) -> list[float]:
    """Seconds (each repeat) of shape inference + annotations for the 100-node graph after a one-param change."""
    import builder
    from builder.graph.cost import canvas_annotations as annotations  # was app_pages.ui.annotations

    tmp = Path(tempfile.mkdtemp()) / "h.json"
    hundred_node_project(tmp)
    g = builder.load_project(tmp).graph
    times = []
    for i in range(repeats):
        nodes = [n.model_copy(update={"params": {"out_features": 64 + (i % 7)}}) if n.id == "fc10" else n
                 for n in g.nodes]
        g2 = g.model_copy(update={"nodes": nodes})
        t0 = time.perf_counter()
        annotations(g2, builder.infer_shapes(g2))
        times.append(time.perf_counter() - t0)
    return times


def canvas_100(page, project_file: Path, repeats: int = 5) -> dict:
    """Drop layers onto a 100-node canvas; time mouse-up -> badge and count rerun requests."""
    from e2e_helpers import drag_from_palette, goto_page, wait_idle

    goto_page(page, "Build")
    page.locator("[data-testid=stSidebar] input[type=file]").set_input_files(str(project_file))
    page.wait_for_selector("[data-testid=node-head]", timeout=60_000)
    wait_idle(page)
    page.wait_for_timeout(1500)
    sent = page.ws_sent
    lat, reruns = [], []
    for i in range(repeats):
        nid = f"linear_{i + 1}"
        before = len(sent)
        drag_from_palette(page, "Linear", 40 + 30 * i, 40)
        t_up = time.perf_counter()
        page.locator(f"[data-testid=badge-{nid}]").wait_for(timeout=20_000)
        lat.append(time.perf_counter() - t_up)
        page.wait_for_timeout(1500)
        reruns.append(sum(1 for t in sent[before:] if t >= t_up - 0.05))
    return {"latency_s": lat, "rerun_requests": reruns}


# ------------------------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=150, help="epochs per throughput run")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved live/headless rounds")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    conditions(f"App: bench/bench_app.py --epochs {args.epochs} --rounds {args.rounds}")
    import torch
    from playwright.sync_api import sync_playwright

    from app_pages.ui import torch_threads

    ws = Path(tempfile.mkdtemp(prefix="layerlab-bench-"))
    proj = ws / "hundred.json"
    hundred_node_project(proj)
    server = Server(ws)
    res: dict = {"first_point_s": [], "live": [], "headless": [], "load": []}
    try:
        with sync_playwright() as p:
            browser = launch_chromium(p)
            ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
            page = ctx.new_page()
            page.base_url = server.url
            page.ws_sent = []  # times of frames the browser sent on Streamlit's websocket (rerun requests)
            page.on("websocket", lambda w: w.on("framesent", lambda _: page.ws_sent.append(time.perf_counter())))
            page.goto(server.url)
            page.wait_for_selector("[data-testid=node-conv1]", timeout=90_000)
            page.wait_for_timeout(6000)  # the app's one-off torch warm-up
            for r in range(args.rounds):
                res["load"].append(os.getloadavg()[0])
                rates, threads = headless_rates(ws, args.epochs)
                res["headless"].append(statistics.median(rates))
                first, run_id = start_training(page, args.epochs)
                res["first_point_s"].append(first)
                t0, c0, th0 = time.time(), chromium_cpu(), thread_cpu(server.proc.pid)
                th1 = wait_finished(page, pid=server.proc.pid)
                dt = time.time() - t0
                per = sorted(((th1[k] - th0.get(k, 0.0)) / dt for k in th1), reverse=True)
                res.setdefault("cpu", []).append({"chromium": (chromium_cpu() - c0) / dt, "trainer": per[0],
                                                  "server_other": sum(per[1:])})
                res["live"].append(statistics.median(epoch_rates(ws, run_id)))
                print(f"round {r}: first point {first:.2f}s, live {res['live'][-1]:.0f}/s, "
                      f"headless {res['headless'][-1]:.0f}/s", flush=True)
            res["threads"] = threads
            res["canvas"] = canvas_100(page, proj)
            browser.close()
    finally:
        server.close()
    res["analysis_s"] = analysis_cost()
    res["torch_threads_app"] = torch_threads()
    res["cpus"] = os.cpu_count()
    res["torch"] = torch.__version__
    print(json.dumps(res, indent=1))
    if not args.no_write:
        write_results(res, args)


def write_results(res: dict, args) -> None:
    med = statistics.median
    live, head = med(res["live"]), med(res["headless"])
    analysis = res["analysis_s"] if isinstance(res["analysis_s"], list) else [res["analysis_s"]]
    ratio = live / head
    per_round = [a / b for a, b in zip(res["live"], res["headless"])]
    cpu = res.get("cpu") or [{"chromium": float("nan"), "trainer": float("nan"), "server_other": float("nan")}]
    chrom, trainer, other = (med([c[k] for c in cpu]) for k in ("chromium", "trainer", "server_other"))
    lat = res["canvas"]["latency_s"]
    text = f"""{SECTION}

`bench/bench_app.py` (`.venv/bin/python bench/bench_app.py --epochs {args.epochs} --rounds {args.rounds}`;
{time.strftime('%Y-%m-%d', time.gmtime())}, commit {commit()}): a real `streamlit run app.py` driven by headless Chromium (Playwright) on the same machine: {res['cpus']} CPU
cores shared with other engineers' test runs (1-min load average {min(res['load']):.1f}–{max(res['load']):.1f}
during the rounds), torch {res['torch']} CPU. The app trains with `torch.set_num_threads({res['torch_threads_app']})`
(one core fewer than the machine, `LAYERLAB_TORCH_THREADS` overrides); the headless baseline uses the same
setting. CNN template on digits (1259 training samples, batch 64).

| What | Result | Target |
|---|---|---|
| Train click → first point on the live loss curve (each: {', '.join(f'{x:.2f}' for x in res['first_point_s'])} s) | {spread(res['first_point_s'], unit=' s')} | < 2 s |
| Throughput with the live Train page open ÷ headless, per round (each: {', '.join(f'{x:.2f}' for x in per_round)}; each round = one headless run then one live run, median samples/s of epochs 2–{args.epochs}) | {spread(per_round)} | ≥ 0.95 |
| same, ratio of the medians over all rounds ({live:,.0f} vs {head:,.0f} samples/s) | {ratio:.2f} | |
| Canvas change at 100 nodes: palette drop (mouse-up) → Python's error badge on the new node, in the browser | {spread(lat, unit=' s')} | < 0.3 s |
| Rerun requests the browser sent per drop (each of {len(lat)}) | {', '.join(map(str, res['canvas']['rerun_requests']))} | 1 |
| Server-side analysis per change at 100 nodes (shape inference + annotations) | {spread(analysis, 1e3, ' ms', 1)} | |

The live page polls the training channel every 0.5 s in an `st.fragment` and redraws three plotly charts.
CPU use during the live runs (median over rounds, in cores): trainer thread {trainer:.2f}, every other thread
of the Streamlit server together {other:.3f}, Chromium (all its processes) {chrom:.2f}. So the app's own
overhead is about {other * 100:.0f} % of a core; what is lost here is mostly the browser drawing the charts on
the same {res['cpus']} cores as the trainer (in a real deployment the browser runs on the user's machine). Without
the app's GIL switch interval of 0.5 ms and its torch thread cap, the same page slowed training 5–20× on this
machine (see `app_pages/ui.py`, `_apply_threads`).
"""
    write_section(SECTION, text)
    print(f"wrote {ROOT / 'bench' / 'RESULTS.md'}")

if __name__ == "__main__":
    main()
