"""What every ``layerlab`` command shares: one-line errors, problem lines, the ``-o`` checks, loading the
project argument, and :func:`dispatch` (the exit codes). Sub-command modules import this, never
:mod:`builder.cli.main`, so the CLI has no import cycle."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import sys
import threading
from pathlib import Path

from builder.data.access import Actor
from builder.errors import GraphError, LayerLabError, ProjectFormatError
from builder.escape import hide_paths, terminal_line
from builder.graph.project import Project, load_project
from builder.graph.templates import TEMPLATE_NAMES, load_template
from builder.runs.store import RunStore


def cli_store(workspace: str | Path | None):
    """The workspace's run store as the CLI's local user (:meth:`builder.data.access.Actor.local`): its own runs,
    every run's stop and delete (an admin), a run id typed on the command line may be a unique prefix of its
    own (:func:`typed_run`)."""
    return RunStore(workspace, actor=Actor.local())


def typed_run(store, text: str) -> str:
    """The id of the run a command line names (a unique prefix among the runs the actor may read works)."""
    return store.get(text, prefix=True).id


def say(text: object = "", *, file=None, max_len: int | None = None) -> None:
    """Print one line of the command's output: every ``layerlab`` line goes through here (a test forbids a bare
    ``print`` in :mod:`builder.cli`), escaped for the terminal (:func:`builder.escape.terminal_line`: a newline,
    carriage return or escape sequence in a name, a message or a file's text shows as ``\\n``, ``\\x1b``...)."""
    print(terminal_line(text, max_len), file=file or sys.stdout)


def say_progress(text: object, stream, *, tty: bool, done: bool) -> None:
    """One progress line, escaped like :func:`say`: on a terminal it overwrites the line before (``done``: and
    ends it); elsewhere only finished lines are written. A failed run's message names the user's nodes."""
    line = terminal_line(text)
    if tty:
        stream.write("\r\x1b[K" + line + ("\n" if done else ""))
    elif done:
        stream.write(line + "\n")
    stream.flush()


def say_block(text: str, *, file=None) -> None:
    """Print output of several lines that LayerLab wrote itself (a model card, a generated table) whose user
    strings were escaped for its own format already: each line escaped for the terminal, the lines kept."""
    print("\n".join(terminal_line(line) for line in str(text).splitlines()), file=file or sys.stdout)


def say_json(data: object, *, file=None, **kwargs) -> None:
    """Print the command's ``--json`` answer (JSON escapes every control character)."""
    print(json.dumps(data, **kwargs), file=file or sys.stdout)


def fail(msg: str, code: int = 2) -> int:
    """Print ``error: msg`` (one escaped line) to stderr and return the exit code."""
    say(f"error: {msg}", file=sys.stderr)
    return code


def print_problems(problems) -> None:
    """One escaped line per problem (warnings prefixed ``warning:``)."""
    for p in problems:
        say(f"warning: {p}" if p.severity == "warning" else str(p))


def check_output_path(output: str) -> Path:
    """The ``-o`` path as a Path, or LayerLabError (one line) when it cannot be written: empty, a folder, or
    inside a folder that does not exist."""
    if not output or not output.strip():
        raise LayerLabError("-o needs a file name; received: an empty path. Fix: e.g. -o model.py")
    path = Path(output)
    if path.is_dir() or output.endswith(("/", "\\")):
        raise LayerLabError(f"-o must name a file, not a folder; received: {output}. Fix: e.g. -o "
                            f"{(path / 'model.py').as_posix()}")
    if not path.parent.is_dir():
        raise LayerLabError(f"the folder of -o does not exist; received: {output}. Fix: create "
                            f"{path.parent.as_posix()} first or choose another path")
    return path


def infer_format(fmt: str | None, output: str | None, default: str = "py") -> str:
    """``--format`` if given, else from the ``-o`` suffix (``.py`` or ``.safetensors``); refuse a mismatch."""
    suffix = Path(output).suffix.lower() if output not in (None, "-", "") else ""
    by_suffix = {".py": "py", ".safetensors": "safetensors", ".onnx": "onnx"}.get(suffix)
    if fmt is None:
        if by_suffix:
            return by_suffix
        if suffix:
            raise LayerLabError(f"cannot tell the export format from the suffix {suffix!r}; received: -o {output}. "
                                "Fix: add --format py or --format safetensors, or name the file .py/.safetensors")
        return default
    if by_suffix and by_suffix != fmt:
        raise LayerLabError(f"--format {fmt} does not match the file name; received: -o {output}. Fix: name it "
                            f"{Path(output).stem}.{fmt} or use --format {by_suffix}")
    return fmt


def emit_text(text: str, output: str | None) -> int:
    """Write ``text`` to stdout (no output or ``-``) or to the file ``output``."""
    if output in (None, "-"):
        sys.stdout.write(text)
    else:
        path = check_output_path(output)
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as e:
            raise LayerLabError(f"cannot write {output}: {e.strerror or e}") from None
        say(f"wrote {output}")
    return 0


def load_project_arg(file: str, *, trains: bool = True) -> Project:
    """The FILE argument of a command: a project file, or a template name such as ``mlp``. A project file that
    ``trains`` (``train``, ``tune``) follows the content rule (:func:`builder.data.sources.check_project`): its data
    is a built-in or an upload, never a path; the command line names files with ``--data-path``. Commands that
    only read the network (``validate``, ``summary``, ``export``) take any project file."""
    if not Path(file).exists():
        name = Path(file).stem if file.endswith(".json") else file
        if name in TEMPLATE_NAMES and not file.endswith(".json"):
            return load_template(name)
        raise ProjectFormatError(f"{terminal_line(file, 200)}: no such file or template; received: {terminal_line(file, 200)}. "
                                 f"Fix: give a project file or a template name ({', '.join(TEMPLATE_NAMES)})")
    if not trains:
        return load_project(file)
    from builder.data.sources import (
        check_project,  # the data stage: only for a project file  # lazy: heavy (numpy)
    )

    return check_project(load_project(file))


#: arguments that name a folder or file of the local user's: made absolute once, at the door (a job, a trial or
#: a study runner started later runs in another working folder)
PATH_ARGS = ("workspace", "data_path", "output", "weights", "input_path")
URI_ARGS = ("mlflow", "storage")  # URIs that may hold a local path (sqlite:///mlflow.db, a file store's folder)


def resolve_paths(args: argparse.Namespace, cwd: str | Path | None = None) -> argparse.Namespace:
    """Make every path argument (:data:`PATH_ARGS`, and FILE when it names an existing file) absolute against
    ``cwd`` (default the working folder), with ``~`` expanded; ``--data-path`` becomes the command line's
    :class:`~builder.data.sources.LocalFile` (the local user's privilege to name a file).

    >>> ns = resolve_paths(argparse.Namespace(workspace="ws", data_path=None, file="mlp"), "/home/me")
    >>> ns.workspace, ns.data_path, ns.file
    ('/home/me/ws', None, 'mlp')
    """
    base = Path(cwd or os.getcwd())

    def absolute(value: str) -> str:
        return os.path.abspath(base / Path(value).expanduser())
    for name in PATH_ARGS:
        value = getattr(args, name, None)
        if isinstance(value, str) and value:
            setattr(args, name, absolute(value))
    if getattr(args, "data_path", None):
        from builder.data.sources import (
            LocalFile,  # the data stage (~0.3 s): only when a file is named  # lazy: heavy (numpy)
        )

        args.data_path = LocalFile(args.data_path)
    for name in URI_ARGS:  # a tracker or study database given as a relative path
        value = getattr(args, name, None)
        if isinstance(value, str) and value:
            from builder.tracking_destinations import absolute_uri  # lazy: heavy (sqlalchemy)

            setattr(args, name, absolute_uri(value, base))
    file = getattr(args, "file", None)
    if isinstance(file, str) and file and (base / Path(file).expanduser()).exists():
        args.file = absolute(file)
    return args


DEBUG_ENV = "LAYERLAB_DEBUG"  # set: an unexpected error prints its traceback
INTERNAL_ERROR = 70  # sysexits' EX_SOFTWARE: LayerLab's own bug


def dispatch(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command with the CLI's exit codes: 0 done, 1 the graph has problems
    (one line each), 2 an unusable file or argument (one line, no traceback), 70 an unexpected error (a bug: one
    line; ``LAYERLAB_DEBUG=1`` prints its traceback), 130 interrupted. Path arguments
    are made absolute here, once (:func:`resolve_paths`)."""
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(resolve_paths(args).func(args) or 0)
    except ProjectFormatError as e:
        return fail(str(e), 2)
    except GraphError as e:
        print_problems(e.problems)
        return 1
    except LayerLabError as e:
        return fail(str(e), 2)
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug: one line (no traceback, no server path) unless asked for the traceback
        if os.environ.get(DEBUG_ENV):
            raise
        return fail(f"layerlab {getattr(args, 'command', None) or ''} stopped on an unexpected error; received: "
                    f"{type(e).__name__}: {hide_paths(str(e))[:300]}. Fix: this is a bug in LayerLab: report the "
                    f"command (set {DEBUG_ENV}=1 to print the traceback)", INTERNAL_ERROR)


def finish_process(code: int) -> None:
    """End the CLI process with exit status ``code``, skipping the interpreter's teardown where that is safe.

    A process that loaded torch spends 0.5-0.8 s after its work finalising modules and freeing memory the
    operating system frees at once (measured on the 2-core machine: 0.57 s of a 4.1 s ``layerlab train``;
    bench/RESULTS.md "CPU runs"). The exit handlers run and the standard streams are flushed first, as at an
    ordinary exit; with another non-daemon thread alive or a ``torch.distributed`` process group open, the
    ordinary exit runs instead. Only the console script and ``python -m builder`` call this (:func:`run`);
    ``main()`` returns its code to an in-process caller.
    """
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive() and not t.daemon]
    dist = sys.modules.get("torch.distributed")
    if others or (dist is not None and dist.is_available() and dist.is_initialized()):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):  # a closed pipe (``... | head``), no stream
            stream.flush()
    os._exit(code)
