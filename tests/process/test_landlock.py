"""Landlock's network rules (builder.process.landlock.restrict's ``ports``): a confined process listens on no TCP
port and connects only to the ports it names, where the kernel has them (ABI 4, Linux 6.7+)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from builder.process import landlock
from builder.process.launcher import child_env, package_root


def _listening() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    return s


@pytest.mark.parametrize("ports", [[], ["named"]])
def test_a_confined_process_connects_only_to_the_ports_it_names_and_listens_on_none(tmp_path, ports):
    """Two services listen on loopback (a database server, anything else of the host): the confined process
    reaches only the one whose port its rules name, and cannot open a port of its own; unconfined, it reached
    both and listened."""
    with _listening() as named, _listening() as other:
        allowed = [named.getsockname()[1]] if ports else []
        code = f"""
import json, socket
from builder.process import landlock
rules = landlock.Confinement(landlock.system_read_paths() + [{str(package_root())!r}], [{str(tmp_path)!r}],
                             ports={allowed!r})
out = {{"line": landlock.confine(rules)}}
for name, port in (("named", {named.getsockname()[1]}), ("other", {other.getsockname()[1]})):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
        out[name] = "connected"
    except PermissionError:
        out[name] = "refused"
try:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    out["listen"] = "listening"
except PermissionError:
    out["listen"] = "refused"
print(json.dumps(out))
"""
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                             env=child_env())
    assert run.returncode == 0, run.stderr[-2000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    if not landlock.net_abi():
        assert "TCP not confined" in seen["line"] or "no Landlock" in seen["line"], seen
        return
    assert seen["line"].startswith("files confined by Landlock"), seen
    assert f"TCP: connects to port(s) {', '.join(map(str, allowed)) or 'none'} only" in seen["line"], seen
    assert seen["named"] == ("connected" if ports else "refused"), seen
    assert seen["other"] == "refused" and seen["listen"] == "refused", seen



def test_what_the_private_walk_did_not_look_at_is_shut(tmp_path):
    """private_paths looks at a bounded number of entries: past them the walk shut nothing, so a big /opt before
    /var/lib left /var/lib/postgresql's data (mode 0700) readable to a root server's confined process. What it did
    not look at is shut now, but for the way to the paths it was told to keep."""
    big, lib = tmp_path / "opt", tmp_path / "lib"
    big.mkdir()
    for i in range(50):
        (big / f"f{i}").touch()
    data = lib / "postgresql" / "main"
    data.mkdir(parents=True)
    (data / "PG_VERSION").touch()
    data.chmod(0o700)
    venv = lib / "app" / "venv"
    venv.mkdir(parents=True)
    (lib / "readable.txt").touch()
    whole = landlock.private_paths([big, lib], keep=[venv])
    assert whole == [data]  # looked at: the 0700 folder only
    cut = landlock.private_paths([big, lib], keep=[venv], limit=20)
    assert data in cut or data.parent in cut
    assert venv not in cut and lib / "app" not in cut  # the way to what is kept stays open


def test_a_folder_shut_whole_stays_shut_whatever_else_is_shut_inside_it(tmp_path):
    """shut_out left each shut path out in turn: a folder opened around the first (its other entries) kept them
    when the second shut path was that folder itself, as if each were named on purpose inside it; and a link
    followed around one path kept what it led to inside another. The result hung on the order of the shut list."""
    for name in ("ws/a", "ws/b", "ws/runs/r", "usr/lib"):
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "ws")
    ws = tmp_path / "ws"
    for shut in ([ws / "a", ws], [ws, ws / "a"]):
        got = set(landlock.shut_out([tmp_path, tmp_path / "link", ws / "runs/r"], shut))
        assert got == {tmp_path / "usr", ws / "runs/r"}, (shut, got)  # a run folder named inside it stays named
