"""The typer app the commands register on, and ``--version``.

Heavy imports (torch, onnxruntime) happen inside commands, so that ``actprof --help`` is instant.
"""

from __future__ import annotations

from typing import Annotated

import typer

from actprof import __version__

app = typer.Typer(
    help="Does a faster-converging activation pay for its test-time cost? "
    "Train on MNIST, export to ONNX, profile with ONNX Runtime, report the trade-off.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        print(f"actprof {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_version, is_eager=True)
    ] = False,
) -> None:
    """Does a faster-converging activation pay for its test-time cost? Train on MNIST, export to ONNX,
    profile with ONNX Runtime and OpenVINO, report the trade-off."""
