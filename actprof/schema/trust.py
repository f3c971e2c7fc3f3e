"""Whether a cached file may be run or loaded: actprof's caches hold code (compiled kernels, runtime
environments), and running a file someone else can write runs their code.

A path is trusted when it is this user's and writable by no one else (``untrusted`` says why not); caches are
created private (``private_dir``). Where the platform has no POSIX owners, nothing can be checked, and
``untrusted`` trusts nothing: each caller decides what that means for it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def untrusted(path: Path) -> str | None:
    """Why ``path`` must not be run or loaded from, or None: it must be owned by this user and writable by no
    one else, and not a symbolic link. Where the platform has no POSIX owners, nothing is trusted."""
    if not hasattr(os, "getuid"):
        return "this platform has no POSIX file owners to check"
    try:
        info = os.lstat(path)
    except OSError as exc:
        return f"{path}: {exc.strerror}"
    if stat.S_ISLNK(info.st_mode):
        return f"{path} is a symbolic link"
    if info.st_uid != os.getuid():
        return f"{path} is owned by another user (uid {info.st_uid})"
    return _writable_by_others(path, info)


def untrusted_target(path: Path) -> str | None:
    """Like ``untrusted`` for what a link points to that need not be this user's (a venv's ``bin/python`` links
    to the system's interpreter): the file it resolves to must be this user's or root's, and writable by no one
    else."""
    if not hasattr(os, "getuid"):
        return "this platform has no POSIX file owners to check"
    try:
        info = os.stat(path)
    except OSError as exc:
        return f"{path}: {exc.strerror}"
    if info.st_uid not in (0, os.getuid()):
        return f"{path} resolves to a file owned by another user (uid {info.st_uid})"
    return _writable_by_others(path, info)


def _writable_by_others(path: Path, info: os.stat_result) -> str | None:
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} is writable by others (mode {stat.S_IMODE(info.st_mode):o})"
    return None


def private_dir(directory: Path) -> Path:
    """``directory``, created 0700 with its parents (an existing one of ours is tightened to it)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if untrusted(directory) is None:
        os.chmod(directory, 0o700)
    return directory
