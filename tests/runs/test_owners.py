"""Owners: ids, folders, the autosaved project and the undo history of replaced projects."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from builder.errors import LayerLabError
from builder.graph.templates import load_template
from builder.runs import owners


def test_anonymous_ids_are_validated():
    a = owners.new_anonymous_id()
    assert owners.valid_anonymous_id(a) and a != owners.new_anonymous_id()
    assert owners.anonymous_owner(a) == "anon:" + a
    for bad in ("", "../../etc", "A" * 32, "a" * 31, None, 123):
        assert not owners.valid_anonymous_id(bad)
    with pytest.raises(LayerLabError, match="32 hexadecimal"):
        owners.anonymous_owner("../x")
    with pytest.raises(LayerLabError, match="email or subject"):
        owners.user_owner("  ")


@given(st.text(min_size=1, max_size=300))
def test_owner_folders_stay_inside_the_workspace(name):
    owner = owners.user_owner(name) if name.strip() else "anon:" + "0" * 32
    sid = owners.safe_id(owner)
    assert sid and "/" not in sid and "\\" not in sid and ".." not in sid and len(sid) <= 64
    assert sid == owners.safe_id(owner) and sid != owners.safe_id(owner + "x")


def test_autosave_and_undo_history(tmp_path):
    me, other = "anon:" + "a" * 32, "user:bob@example.org"
    assert owners.load_autosave(tmp_path, me) is None and owners.pop_history(tmp_path, me) is None
    cnn, mlp = load_template("cnn"), load_template("mlp")
    owners.save_project(tmp_path, me, cnn)
    assert owners.load_autosave(tmp_path, me).name == cnn.name and owners.load_autosave(tmp_path, other) is None
    owners.push_history(tmp_path, me, cnn)
    owners.save_project(tmp_path, me, mlp)
    assert owners.load_autosave(tmp_path, me).name == mlp.name
    assert owners.pop_history(tmp_path, me).name == cnn.name and owners.history(tmp_path, me) == []
    for _ in range(owners.HISTORY_KEEP + 3):
        owners.push_history(tmp_path, me, mlp)
    assert len(owners.history(tmp_path, me)) == owners.HISTORY_KEEP
    (owners.owner_dir(tmp_path, me) / "project.json").write_text("{not json")
    assert owners.load_autosave(tmp_path, me) is None  # a damaged autosave is ignored, not an error


# ------------------------------------------------------------------ shared mode and studies (the rules: tests/test_access.py)
def test_shared_mode_comes_from_the_environment(monkeypatch):
    for value, want in (("1", True), (" TRUE ", True), ("yes", True), ("0", False), ("", False), ("no", False)):
        monkeypatch.setenv(owners.ENV_SHARED, value)
        assert owners.shared_runs() is want
    monkeypatch.delenv(owners.ENV_SHARED)
    assert owners.shared_runs() is False


def test_a_study_follows_the_rule_of_runs():
    from builder.search.storage import _check_owner

    _check_owner("s", "local", "local")
    with pytest.raises(LayerLabError, match="another person's study"):
        _check_owner("s", "local", "anon:" + "a" * 32)
