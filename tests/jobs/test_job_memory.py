"""A job's training memory (builder.jobs.queue.job_memory: the GPU packing's job_need, a cluster's job_resources):
its batch size and optimizer, the loss of its task on the outputs, and a distillation's teacher."""

from __future__ import annotations

from types import SimpleNamespace

from builder.errors import AccessDenied
from builder.graph.architectures import build
from builder.graph.memory import training_memory
from builder.graph.shapes import infer_shapes
from builder.graph.templates import load_template
from builder.jobs import queue as jobs
from builder.training import gpus as G


def _spec(project, **config):
    return jobs.JobSpec(project=project.model_dump(), dataset="digits", config=config)


def test_a_language_models_job_counts_its_token_loss():
    """gpt at 256 tokens, vocabulary 50,000, batch 8: the job was admitted at 458 MiB for a step measured at
    1,655 MiB (tests/graph/test_memory.py measures the loss term)."""
    gpt = load_template("gpt")
    for n in gpt.graph.nodes:
        if n.id == "tokens":
            n.params.update(shape=[256], vocab_size=50_000)
        elif n.id == "pos":
            n.params["max_len"] = 256
        elif n.id == "lm_head":
            n.params["out_features"] = 50_000
    report = infer_shapes(gpt.graph)
    est = jobs.job_memory(_spec(gpt, batch_size=8), "cpu")
    assert gpt.training["task"] == "next_token" and gpt.training["optimizer"] == "adamw"
    assert est == training_memory(report, 8, "adamw", loss="tok")
    assert est.peak - training_memory(report, 8, "adamw").peak > 2**30  # the log-softmax and its gradients
    assert jobs.job_need(_spec(gpt, batch_size=8)) == \
        training_memory(report, 8, "adamw", "cuda", loss="tok").peak + G.CUDA_CONTEXT_BYTES


def test_a_distillation_job_counts_its_teacher():
    teacher = build("resnet18", input_shape=(1, 8, 8), classes=10)
    student = load_template("cnn")
    student.training = {**student.training, "teacher": "20261121-104000-ab12cd"}
    runs = {"20261121-104000-ab12cd": SimpleNamespace(project=teacher)}

    def get(rid):
        if rid not in runs:
            raise AccessDenied("not yours")
        return runs[rid]

    alone = jobs.job_memory(_spec(student, batch_size=32), "cpu")
    est = jobs.job_memory(_spec(student, batch_size=32), "cpu", SimpleNamespace(get=get))
    t = infer_shapes(teacher.graph)
    assert est.weights - alone.weights == 4 * (t.total_params + t.total_buffers)  # 11.2 M parameters, 43 MiB
    assert est.peak > alone.peak + 40 * 2**20
    assert est == training_memory(infer_shapes(student.graph), 32, "adam", loss="ce", frozen=t)
    runs.clear()  # a teacher the job's owner cannot read: left out here, refused by the run with its reason
    assert jobs.job_memory(_spec(student, batch_size=32), "cpu", SimpleNamespace(get=get)) == alone


def test_admission_counts_the_budget_its_run_is_checked_at():
    """One rule for a job's admission, the run's check and ``layerlab validate`` (pipeline.run_budget): the
    settings resolve as the run resolves them, and a settings error leaves the defaults (the run refuses it: a
    batch of 10**9 was admitted at 20 TB, a job that waits for ever for a GPU instead of failing with its reason)."""
    from builder.runs.pipeline import run_budget
    from builder.training.config import TrainConfig

    cnn = load_template("cnn")
    report = infer_shapes(cnn.graph)
    for over in ({}, {"batch_size": 7, "optimizer": "sgd"}, {"optimizer": "adamw"}, {"lr": "x"}, {"batch_size": 10**9}):
        try:
            cfg = TrainConfig.resolve(cnn.training.get("task"), None, cnn.training, over)
        except Exception:
            cfg = TrainConfig.resolve(cnn.training.get("task"))
        b = run_budget(cfg, cnn.training.get("task"))
        assert jobs.job_memory(_spec(cnn, **over), "cpu") == \
            training_memory(report, b.batch_size, b.optimizer, "cpu", loss=b.loss)
    gan = load_template("gan")  # drawn loss nodes: counted as nodes of the graph, no second loss on the outputs
    b = run_budget(TrainConfig.resolve(gan.training.get("task"), None, gan.training), gan.training.get("task"),
                   drawn_loss=True)
    assert b.loss is None
    assert jobs.job_memory(_spec(gan), "cpu") == training_memory(infer_shapes(gan.graph), b.batch_size, b.optimizer,
                                                                 "cpu")
