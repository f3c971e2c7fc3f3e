"""The command line: parse options into configs, call the public API (``actprof.api``), print what it returns,
map errors to exit codes. ``main`` is the entry point; ``app`` the typer app; ``training``, ``measuring`` and
``results`` the commands; ``options`` the shared options; ``build`` turns words into configs; ``console`` draws."""

from actprof.cli.main import main

__all__ = ["main"]
