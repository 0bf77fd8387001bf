"""AppTest: the Train page's Cross-validate mode (K folds as grouped runs, mean ± std of the test metrics)."""

from __future__ import annotations

from builder.access import SYSTEM
from builder.runs.store import RunStore
from tests.helpers import open_app


def test_cross_validate_trains_k_grouped_runs_and_shows_mean_and_std(workspace, monkeypatch):
    monkeypatch.setenv("LAYERLAB_TORCH_THREADS", "1")
    at = open_app("app_pages/train.py", template="mlp")  # MLP on moons (small: offered)
    at.session_state["ll_train_mode"] = "Cross-validate"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.number_input(key="ll_cv_folds").set_value(3)
    at.number_input(key="ll_cv_epochs").set_value(2)
    next(b for b in at.button if b.label == "Run cross-validation").click().run()
    assert not at.exception, [e.value for e in at.exception]
    res = at.session_state["ll_cv_result"]
    assert res["folds"] == 3 and len(res["run_ids"]) == 3 and all(res["run_ids"])
    table = at.dataframe[0].value
    assert list(table["fold"]) == [1, 2, 3] and "accuracy" in table.columns
    labels = {m.label for m in at.metric}
    assert "accuracy" in labels
    runs = RunStore(workspace, actor=SYSTEM).list_runs(tags={"crossval": res["group"]})
    assert sorted(r["tags"]["fold"] for r in runs) == [0, 1, 2]
