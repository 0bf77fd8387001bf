"""The server's secrets that no confined process reads, wherever the server keeps them
(:func:`server_secrets`), and the record of those Streamlit found in the server process itself
(:func:`keep_secrets`), which its jobs, study runners and launchers get in their environment. The Landlock rules
(:mod:`builder.process.landlock`) leave each of them out."""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterable, Mapping
from pathlib import Path

import tomllib

from builder.process.launcher import package_root
from builder.runs import db as _db
from builder.runs.owners import server_config_path

STREAMLIT_SECRETS = Path(".streamlit", "secrets.toml")
STREAMLIT_CONFIG = Path(".streamlit", "config.toml")  # its [secrets] files say where the secrets are; its
# server.cookieSecret signs cookies
RUN_SECRETS = ("/run/credentials", "/run/secrets")  # systemd's credentials; Docker's and Kubernetes' secrets
SECRETS_ENV = "LAYERLAB_SERVER_SECRETS"  # the server's secrets files as the server itself found them (keep_secrets)


def keep_secrets(paths: Iterable[str | os.PathLike]) -> None:
    """Record ``paths`` (the server's secrets files as Streamlit found them in the server process: its ``secrets.files``
    from the command line, ``STREAMLIT_SECRETS_FILES`` or a config file, and its config files, in the server's working
    and home folders) in :data:`SECRETS_ENV`, which every job, study runner and launcher this server starts gets
    (:data:`builder.jobs.job_sandbox.PASSED_ENV`), so that :func:`server_secrets` shuts them there too. A job works
    in another folder with another home and none of the server's ``STREAMLIT_`` variables or arguments: from its own
    it found only the package's and the user's ``.streamlit``, and read the server's working folder's
    ``secrets.toml`` (in ``/opt``, mode 0644) and a file ``STREAMLIT_SECRETS_FILES`` named in ``/etc``."""
    os.environ[SECRETS_ENV] = os.pathsep.join(dict.fromkeys(os.path.abspath(os.path.expanduser(os.fspath(p)))
                                                            for p in paths if os.fspath(p).strip()))


def kept_secrets(env: Mapping[str, str] | None = None) -> list[Path]:
    """The files :func:`keep_secrets` recorded in ``env`` (default: this process's environment, its server's).

    >>> kept_secrets({SECRETS_ENV: os.pathsep.join(["/etc/app/auth.toml", "/opt/site/.streamlit/config.toml"])})
    [PosixPath('/etc/app/auth.toml'), PosixPath('/opt/site/.streamlit/config.toml')]
    """
    value = (os.environ if env is None else env).get(SECRETS_ENV, "")
    return [Path(os.path.abspath(p)) for p in value.split(os.pathsep) if p.strip()]


def server_secrets(workspace: str | os.PathLike, db_url: str | None = None) -> list[Path]:
    """The server's secrets a confined process never reads, wherever they are kept (the workspace is shut on its
    own): Streamlit's secrets files (``.streamlit/secrets.toml`` in the app's folder, which is this package's and on
    every process's path, in the working folder and in the home folder: ``st.login``'s ``cookie_secret`` signs every
    signed-in person's identity cookie, beside the identity provider's client secret), Streamlit's config files in
    the same folders (``server.cookieSecret``) and the secrets files they name instead (``[secrets] files``, e.g.
    ``/etc/layerlab/auth.toml``), the server's config file
    (:func:`builder.runs.owners.server_config_path`: ``LAYERLAB_SERVER_CONFIG`` may name one in ``/etc``; it may
    hold a database password), an SQLite run database kept outside the workspace (``db_url``, default the
    workspace's: every owner's id) and the credentials a service manager or container hands the server under
    ``/run`` (:data:`RUN_SECRETS`: systemd's ``LoadCredential=``, Docker's and Kubernetes' secrets). A process that
    writes the database gets its files by name all the same (:func:`db_files`).

    What lies inside the workspace is not listed: the workspace is shut whole, and a job's working and home folders
    are its private ones there (listed, its own folders would lose their rules: :func:`beside`).

    >>> import tempfile
    >>> ws = Path(tempfile.mkdtemp())
    >>> shut = server_secrets(ws, "sqlite:////srv/db/runs.db")
    >>> package_root() / STREAMLIT_SECRETS in shut, Path("/srv/db/runs.db-wal") in shut, Path("/run/credentials") in shut
    (True, True, True)
    >>> ws / "server.json" in shut or ws / "layerlab.db" in server_secrets(ws, f"sqlite:///{ws}/layerlab.db")
    False
    """
    folders = [package_root()]
    for where in (Path.cwd, Path.home, lambda: Path(pwd.getpwuid(os.getuid()).pw_dir)):  # a job's HOME is private
        try:
            folders.append(where())
        except (OSError, RuntimeError, KeyError):  # no working folder any more, no home
            continue
    out = [Path(os.path.abspath(f / name)) for f in folders for name in (STREAMLIT_SECRETS, STREAMLIT_CONFIG)]
    kept = kept_secrets()  # the server's own (keep_secrets): a job's working folder and home are not the server's
    out += [*_named_secrets([*out[1::2], *(p for p in kept if p.name == STREAMLIT_CONFIG.name)]), *kept,
            *(Path(p) for p in RUN_SECRETS)]
    out.append(Path(os.path.abspath(server_config_path(workspace))))
    url = _db.database_url(workspace) if db_url is None else db_url
    if _db.is_sqlite(url):
        import sqlalchemy as sa  # lazy: heavy (sqlalchemy)

        name = sa.engine.make_url(url).database
        if name and name != ":memory:":
            db = os.path.abspath(name)
            out += [Path(db + end) for end in ("", "-wal", "-shm", "-journal")]
    inside = Path(os.path.abspath(workspace))
    return [p for p in dict.fromkeys(out) if inside not in p.parents]


def _named_secrets(configs: Iterable[Path]) -> list[Path]:
    """The secrets files Streamlit's config files name (``[secrets] files``: TOML files or folders of
    Kubernetes-style secrets, read instead of ``.streamlit/secrets.toml``); a config that cannot be read names none.

    >>> import tempfile
    >>> cfg = Path(tempfile.mkdtemp(), "config.toml")
    >>> _ = cfg.write_text('[secrets]\\nfiles = ["/etc/app/auth.toml", "~/k8s"]\\n')
    >>> _named_secrets([cfg]) == [Path("/etc/app/auth.toml"), Path.home() / "k8s"]
    True
    """
    out: list[Path] = []
    for cfg in configs:
        try:
            files = tomllib.loads(cfg.read_text(encoding="utf-8")).get("secrets", {}).get("files")
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
            continue
        for name in [files] if isinstance(files, str) else files if isinstance(files, list) else []:
            if isinstance(name, str) and name.strip():
                out.append(Path(os.path.abspath(os.path.expanduser(name))))
    return out


__all__ = ["server_secrets", "keep_secrets", "kept_secrets", "SECRETS_ENV", "STREAMLIT_SECRETS", "STREAMLIT_CONFIG",
           "RUN_SECRETS"]
