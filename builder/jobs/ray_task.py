"""The Ray task of a job (:class:`builder.jobs.executors.RayExecutor`): on the node Ray chose, it starts the job
process of a local server (``python -m builder.jobs.queue run``, sandboxed) and waits for it. A Ray worker imports
this module to run the task, so it imports no torch (the job process does): each job's worker starts in seconds
and holds no model library in its memory."""

from __future__ import annotations

import os

from builder.process.launcher import run_attached

ENV_PLACED = "LAYERLAB_JOB_PLACED"  # set for a job process a scheduler placed: it claims no slot of its host


def run_on_node(workspace: str, run_id: str, env_extra: dict[str, str]) -> int:
    """The Ray task: the job process of ``run_id``, with the server's ``LAYERLAB_*`` settings ``env_extra`` (its
    database among them), killed with this worker when the node goes or the server that submitted it dies
    (``PR_SET_PDEATHSIG``: Ray ends a dead driver's tasks); its exit code."""
    os.environ.update(env_extra)  # the store's database (a one-task worker: max_calls=1)
    import ray  # lazy: heavy (ray)

    from builder.data.access import SYSTEM  # lazy: heavy (sqlalchemy, on a Ray worker)
    from builder.jobs import job_sandbox  # lazy: heavy (sqlalchemy, on a Ray worker)
    from builder.runs.store import RunStore  # lazy: heavy (sqlalchemy, on a Ray worker)

    store = RunStore(workspace, actor=SYSTEM, mark_interrupted=False)
    store.set_environment(run_id, ray_node=ray.get_runtime_context().get_node_id())  # which node runs it
    folder = store.folder(run_id, write=True)  # the job's own run
    folder.tmp.mkdir(parents=True, exist_ok=True)
    env = {**job_sandbox.job_env(folder.tmp), **env_extra, ENV_PLACED: run_id}
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:  # the GPU Ray gave this task
        env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
    pid, code = run_attached(["-m", "builder.jobs.queue", "run", "--workspace", workspace, run_id], folder.job_log,
                             env=env)
    job_sandbox.record_death(store, run_id, pid, code)
    return code


__all__ = ["run_on_node", "ENV_PLACED"]
