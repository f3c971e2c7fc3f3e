"""The entry point: every error a user can cause becomes one line on stderr and a documented exit code, never a
traceback."""

from __future__ import annotations

import os
import signal
import sys

import typer

from actprof.cli import commands  # noqa: F401  (registers the commands on the app)
from actprof.cli.app import app
from actprof.cli.console import show_warnings_in_one_line
from actprof.errors import EXIT_INTERRUPTED, EXIT_RUNTIME, EXIT_USAGE, ActprofError

INTERRUPTED = "interrupted; artifacts already written are complete, nothing partial was left"


def main() -> None:
    """Entry point: user errors become one line on stderr and a documented exit code, never a traceback."""
    show_warnings_in_one_line()
    try:
        code = app(standalone_mode=False)
    except (typer.Abort, KeyboardInterrupt):
        _fail(INTERRUPTED, EXIT_INTERRUPTED)
    except typer.Exit as exc:
        code = exc.exit_code
    except ActprofError as exc:
        _fail(str(exc), exc.exit_code)
    except typer.TyperException as exc:  # typer's own usage errors: bad option values, unknown options
        if type(exc).__name__ == "NoArgsIsHelpError":
            print(exc.format_message())
            _exit(EXIT_USAGE)
        ctx = getattr(exc, "ctx", None)
        hint = f" (see: actprof {_subcommand(ctx)} --help)" if ctx is not None and ctx.parent else ""
        _fail(f"{exc.format_message()}{hint}", getattr(exc, "exit_code", EXIT_RUNTIME))
    except Exception as exc:
        if not _caused_by_interrupt(exc):
            raise
        _fail(INTERRUPTED, EXIT_INTERRUPTED)
    if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C into Exit(130), which click returns here
        _fail(INTERRUPTED, EXIT_INTERRUPTED)
    _exit(code if isinstance(code, int) else 0)


def _caused_by_interrupt(exc: BaseException) -> bool:
    """A Ctrl-C that landed inside a C extension's import surfaces as the ImportError it caused (ONNX Runtime
    raises "initialization failed" from the KeyboardInterrupt): still an interrupt."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def _exit(code: int) -> None:
    """End with ``code``. The command is over: a Ctrl-C during the interpreter's shutdown (threads joined,
    atexit handlers) would otherwise end the process by the signal, exit -2, instead of the code it earned
    (seen when a run finished just before the Ctrl-C)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)


def _fail(message: str, code: int) -> None:
    print(f"actprof: error: {message}", file=sys.stderr)
    if code == EXIT_INTERRUPTED:
        # A Ctrl-C that lands inside a C extension's import can leave the interpreter re-raising SIGINT
        # at shutdown (exit -2 instead of 130, seen with torch). Every temporary file was already removed
        # by the atomic writers' finally blocks, so end here, with the documented code.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _exit(code)


def _subcommand(ctx) -> str:
    """``history show`` for a context two levels down (the root's own name is how it was launched)."""
    names = []
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name)
        ctx = ctx.parent
    return " ".join(reversed(names))
