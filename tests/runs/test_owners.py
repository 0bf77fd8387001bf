"""Owners: ids, folders, the autosaved project and the undo history of replaced projects."""

from __future__ import annotations

import json
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.errors import LayerLabError
from builder.graph.templates import load_template
from builder.runs import owners
from tests.fuzz_budget import budget


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


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """One workspace for the properties below (its secret is made on first use)."""
    return tmp_path_factory.mktemp("owners_ws")


@given(name=st.text(min_size=1, max_size=300))
def test_owner_folders_stay_inside_the_workspace(ws, name):
    owner = owners.user_owner(name) if name.strip() else "anon:" + "0" * 32
    sid = owners.safe_id(ws, owner)
    assert sid and "/" not in sid and "\\" not in sid and ".." not in sid and len(sid) <= 64
    assert sid == owners.safe_id(ws, owner) and sid != owners.safe_id(ws, owner + "x")


def _runs(cookie: str, n: int = 6) -> set[str]:
    return {cookie[i:i + n] for i in range(len(cookie) - n + 1)}


@settings(max_examples=budget(300))
@given(cookie=st.binary(min_size=16, max_size=16).map(bytes.hex))
def test_folder_names_and_pseudonyms_carry_nothing_of_the_cookie(ws, cookie):
    """No run of 6 hex digits of an anonymous id appears in its folder name or pseudonym (an admin who saw
    either could otherwise sign in as that person)."""
    owner = owners.anonymous_owner(cookie)
    for shown in (owners.safe_id(ws, owner), owners.pseudonym(ws, owner), str(owners.owner_dir(ws, owner))):
        assert not any(run in shown for run in _runs(cookie)), shown


def test_the_secret_is_private_stable_and_made_once_by_racing_processes(tmp_path):
    ws = tmp_path / "ws"
    with ThreadPoolExecutor(8) as pool:  # eight servers starting at once agree on one key
        keys = set(pool.map(lambda _: owners.workspace_secret(ws), range(16)))
    assert len(keys) == 1 and len(keys.pop()) == 32
    key_file = ws / owners.SECRET_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert sorted(p.name for p in ws.iterdir()) == [owners.SECRET_FILE]  # no temporary file left behind
    me = "anon:" + "a" * 32
    name, label = owners.safe_id(ws, me), owners.pseudonym(ws, me)
    assert (owners.safe_id(ws, me), owners.pseudonym(ws, me)) == (name, label)  # stable across opens
    key_file.chmod(0o644)  # restored from a backup with the default mode: made private again
    assert owners.safe_id(ws, me) == name and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    other = tmp_path / "other"
    assert owners.safe_id(other, me) != name and owners.pseudonym(other, me) != label  # keyed per workspace
    key_file.write_text("short")
    with pytest.raises(LayerLabError, match="identity key"):
        owners.safe_id(ws, me)


def test_the_secret_is_made_once_where_hard_links_are_refused(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")  # as on a file system without hard links

    monkeypatch.setattr(owners.os, "link", no_links)
    ws = tmp_path / "ws"
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: owners.workspace_secret(ws), range(16)))
    assert len(keys) == 1 and stat.S_IMODE((ws / owners.SECRET_FILE).stat().st_mode) == 0o600
    assert sorted(p.name for p in ws.iterdir()) == [owners.SECRET_FILE]


def test_pseudonyms_are_stable_distinct_and_name_teachers_and_admins(ws, monkeypatch, tmp_path):
    people = [owners.anonymous_owner(owners.new_anonymous_id()) for _ in range(300)] + ["user:ann@school.org"]
    labels = [owners.pseudonym(ws, p) for p in people]
    assert len(set(labels)) == len(people) and all(owners.PSEUDONYM_RE.match(x) for x in labels)
    assert labels == [owners.pseudonym(ws, p) for p in people]
    assert owners.pseudonym(ws, owners.LOCAL_OWNER) == "local"
    teacher, admin, stranger = people[:3]
    monkeypatch.delenv("LAYERLAB_SERVER_CONFIG", raising=False)
    monkeypatch.setenv("LAYERLAB_TEACHERS", f" {owners.pseudonym(ws, teacher)} , ann@school.org")
    monkeypatch.setenv("LAYERLAB_ADMINS", owners.pseudonym(ws, admin))
    assert owners.is_teacher(ws, teacher) and owners.is_teacher(ws, "user:ann@school.org")
    assert not owners.is_teacher(ws, stranger) and not owners.is_teacher(ws, admin)
    assert owners.is_admin(ws, admin) and not owners.is_admin(ws, teacher) and owners.is_admin(ws, "local")
    monkeypatch.delenv("LAYERLAB_TEACHERS")
    (ws / owners.SERVER_CONFIG).write_text(json.dumps({"teachers": [owners.pseudonym(ws, stranger)]}))
    try:
        assert owners.is_teacher(ws, stranger) and not owners.is_teacher(ws, teacher)
    finally:
        (ws / owners.SERVER_CONFIG).unlink()


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


def test_a_study_follows_the_rule_of_runs(tmp_path):
    """A study recording no owner is the local user's (as a run); an app owner's is under its own key, or a bare
    name recording it (made before names were per owner)."""
    from builder.search.storage import _owns, study_key

    me, other = "anon:" + "a" * 32, "anon:" + "b" * 32
    mine = study_key(tmp_path, me, "s")
    assert _owns("s", None, "local", "s") and not _owns("s", None, me, mine)
    assert _owns(mine, None, me, mine) and _owns(mine, {"owner": me}, me, mine)
    assert not _owns(mine, {"owner": other}, me, mine)  # a recorded owner must agree with the key
    assert _owns("s", {"owner": me}, me, mine) and not _owns("s", {"owner": me}, other, study_key(tmp_path, other, "s"))
    assert not _owns(mine, {"owner": me}, other, study_key(tmp_path, other, "s"))
    assert not _owns(mine, {"owner": me}, "local", "s")


# ------------------------------------------------------------------------- the name a person chose to be shown
def test_a_chosen_display_name_is_shown_with_the_pseudonym(tmp_path):
    me = "anon:" + "9f3ab7" * 5 + "e2"
    assert owners.display_name(tmp_path, me) is None and owners.label(tmp_path, me) == owners.pseudonym(tmp_path, me)
    assert owners.set_display_name(tmp_path, me, "  Ann   B. ") == "Ann B."
    assert owners.label(tmp_path, me) == f"Ann B. ({owners.pseudonym(tmp_path, me)})"
    assert owners.set_display_name(tmp_path, me, "Zoë O'Neil-Søndergaard") == "Zoë O'Neil-Søndergaard"
    for bad in ("x" * 41, "**bold**", "<b>x</b>", "a|b", "a\u202eb", "_x", owners.pseudonym(tmp_path, "user:t@x"),
                "local", "anon:" + "a" * 32):
        with pytest.raises(LayerLabError, match="a display name is 1 to 40"):
            owners.set_display_name(tmp_path, me, bad)
    assert owners.display_name(tmp_path, me) == "Zoë O'Neil-Søndergaard"  # a refused name changes nothing
    (owners.owner_dir(tmp_path, me) / owners.PROFILE).write_text(json.dumps({"display_name": "<script>"}))
    assert owners.display_name(tmp_path, me) is None  # an edited file is checked again when read
    owners.set_display_name(tmp_path, me, "Ann")
    assert owners.set_display_name(tmp_path, me, "   ") is None and owners.display_name(tmp_path, me) is None


def test_a_save_on_top_of_a_newer_one_is_refused_and_writes_nothing(tmp_path):
    """Two tabs of one person (issue 29, item 2): each save names the revision it read; a stale one is refused
    with the revision saved now and leaves the newer project as it is."""
    from builder.errors import StaleProjectError

    me = "anon:" + "3" * 32
    assert owners.project_revision(tmp_path, me) == 0
    opened = owners.project_revision(tmp_path, me)  # both tabs open the same (empty) state
    b = owners.save_project(tmp_path, me, load_template("mlp"), base=opened)  # tab B saves first
    with pytest.raises(StaleProjectError, match="saved by another tab") as e:
        owners.save_project(tmp_path, me, load_template("cnn"), base=opened)  # tab A, stale
    assert e.value.revision == b == owners.project_revision(tmp_path, me)
    assert owners.load_autosave(tmp_path, me).name == load_template("mlp").name  # B's project is kept
    assert owners.save_project(tmp_path, me, load_template("cnn"), base=b) == b + 1  # A, after its choice
    assert owners.save_project(tmp_path, me, load_template("lstm")) == b + 2  # no base: the last write wins
    # many tabs saving at once from one revision: exactly one wins
    base = owners.project_revision(tmp_path, me)

    def save(i: int) -> bool:
        try:
            owners.save_project(tmp_path, me, load_template("mlp"), base=base)
            return True
        except StaleProjectError:
            return False

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(save, range(8))) == 1


def test_a_hidden_guide_stays_hidden_and_keeps_the_display_name(tmp_path):
    """The Build page's guide card, once hidden, stays hidden after a reload (issue 29, item 14): the choice is
    kept in the owner's profile beside the display name, each surviving a change of the other."""
    me, other = "anon:" + "1" * 32, "anon:" + "2" * 32
    assert owners.preference(tmp_path, me, "guide_hidden") is False
    owners.set_display_name(tmp_path, me, "Ann")
    owners.set_preference(tmp_path, me, "guide_hidden", True)
    assert owners.preference(tmp_path, me, "guide_hidden") is True and owners.display_name(tmp_path, me) == "Ann"
    assert owners.preference(tmp_path, other, "guide_hidden") is False  # one person's choice only
    owners.set_display_name(tmp_path, me, "")
    assert owners.preference(tmp_path, me, "guide_hidden") is True and owners.display_name(tmp_path, me) is None
    owners.set_preference(tmp_path, me, "guide_hidden", False)
    assert owners.preference(tmp_path, me, "guide_hidden") is False
    assert not (owners.owner_path(tmp_path, me) / owners.PROFILE).exists()  # nothing left: no file
    with pytest.raises(LayerLabError, match="a preference is one of"):
        owners.set_preference(tmp_path, me, "../x", True)


@settings(max_examples=budget(200))
@given(name=st.text(max_size=60))
def test_a_display_name_is_kept_checked_or_refused(ws, name):
    me = "anon:" + "b" * 32
    try:
        kept = owners.set_display_name(ws, me, name)
    except LayerLabError:
        return
    assert kept == owners.display_name(ws, me)
    assert kept is None or (0 < len(kept) <= owners.DISPLAY_NAME_MAX and not set(kept) & set("<>*|`[]():\n\\"))


@pytest.mark.parametrize("suffix", ["\n", "\r\n", "\x00", " "])
def test_ids_are_whole_strings_with_nothing_after_them(tmp_path, suffix, monkeypatch):
    """Validators of ids take the whole string (a regex's ``$`` also matches before a final newline)."""
    from builder.data.uploads import is_upload_id
    from builder.runs import classes
    from builder.runs.classes import ClassError

    upload = "upload:" + "ab" * 32 + ".csv"
    anon = "0123456789abcdef" * 2
    pseudo = owners.pseudonym(tmp_path, "user:ann@school.org")
    assert is_upload_id(upload) and owners.valid_anonymous_id(anon) and owners.PSEUDONYM_RE.match(pseudo)
    assert not is_upload_id(upload + suffix)
    assert not owners.valid_anonymous_id(anon + suffix)
    assert not owners.PSEUDONYM_RE.match(pseudo + suffix)
    monkeypatch.setenv("LAYERLAB_TEACHERS", "t@school.org")
    cls = classes.create_class(tmp_path, "user:t@school.org", "ML", load_template("mlp"))
    with pytest.raises(ClassError):
        classes.get_class(tmp_path, cls["id"] + suffix, "user:t@school.org")


def test_a_confined_process_keeps_no_secret_of_the_server_config(tmp_path, monkeypatch):
    """A job pins the server config before ``server.json`` closes to it, and code its model turned against it reads
    whatever the process holds: the whole config gave every job the run database's password and the admin's MLflow
    credentials, which it could write into its run's outputs or send to its own tracker. The pinned copy has no
    database URL and no tracker credentials, but the job's own tracker's URI (it holds it anyway), and the job
    still finds its tracker allowed."""
    from builder import tracking_destinations as td
    from builder.runs import db

    assert (owners.DATABASE_KEY, owners.TRACKING_KEY) == (db.CONFIG_KEY, td.CONFIG_KEY)
    monkeypatch.delenv("LAYERLAB_SERVER_CONFIG", raising=False)
    monkeypatch.setattr(owners, "_PINNED", {})
    ws, me = tmp_path / "ws", "anon:" + "c" * 32
    ws.mkdir()
    default, team = "https://admin:S3CRET-PW@ml.example.org", "https://ml.example.org/team?token=S3CRET-TOKEN"
    (ws / "server.json").write_text(json.dumps({"database_url": "postgresql://u:S3CRET-DB@db.example.org/x",
                                                "teachers": ["t@example.org"],
                                                "tracking": {"uri": default, "allow": [team]}}))
    owners.pin(ws, me)  # a probe or a worker, or a job logging to the team's tracker
    pinned = json.dumps(owners.server_config(ws))
    assert "S3CRET" not in pinned and "t@example.org" in pinned and "ml.example.org" in pinned
    assert td.check_destination("https://ml.example.org/team/a", ws, me) == "https://ml.example.org/team/a"
    assert not td.is_server_default("https://ml.example.org/team/a", ws)
    owners.pin(ws, me, [default])  # a job logging to the admin's tracker keeps that URI (it holds it anyway)
    pinned = owners.server_config(ws)
    assert pinned["tracking"]["uri"] == default and "S3CRET-DB" not in json.dumps(pinned)
    assert "S3CRET-TOKEN" not in json.dumps(pinned)
    assert td.is_server_default(default, ws) and td.check_destination(default, ws, me) == default


_CLAIM = st.text(min_size=0, max_size=40)


@settings(max_examples=budget(200))
@given(email=_CLAIM, verified=st.one_of(st.none(), st.just(False), st.sampled_from(["false", "0", "yes", ""])),
       sub=_CLAIM, iss=st.sampled_from(["", "https://accounts.example.com", "https://id.example.org/tenant/v2"]))
def test_an_unverified_email_never_names_a_signed_in_user(email, verified, sub, iss):
    """A provider that lets a person write any e-mail (or does not say it checked it) cannot make them
    ``user:admin@school.org``: their name is their issuer-qualified subject, or none (the cookie decides)."""
    name = owners.signed_in_name({"email": email, "email_verified": verified, "sub": sub, "iss": iss})
    if name is not None:
        assert ":" in name and name.split(":", 1)[1] == sub.strip() and name.split(":", 1)[0] in iss
        assert sub.strip() and iss


def test_a_verified_email_names_the_user_and_subjects_of_two_providers_differ():
    assert owners.signed_in_name({"email": "ann@school.org", "email_verified": True, "sub": "1", "iss": "https://a"}) \
        == "ann@school.org"
    one = owners.signed_in_name({"sub": "1", "iss": "https://accounts.one.example"})
    other = owners.signed_in_name({"sub": "1", "iss": "https://login.other.example/common"})
    assert one == "accounts.one.example:1" and other == "login.other.example:1"
    assert owners.signed_in_name({"sub": "1"}) is None and owners.signed_in_name({}) is None
