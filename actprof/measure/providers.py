"""The profile settings as they run here: the thread pool fixed first, and only providers that really bind.

A provider named explicitly must bind (else a one-line refusal); under ``--provider all`` those that do not
are skipped and said. Called when a measuring stage starts, never while options are parsed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from actprof import runtimes
from actprof.errors import ProviderUnavailable, UsageError
from actprof.runtimes.base import fixed_threads
from actprof.runtimes.onnxruntime import ort_runtime
from actprof.settings.profile import SUPPORTED_PRECISIONS, ProfileSettings

Say = Callable[[str], None]


def fix_threads(threads: int) -> int:
    """Size the process's intra-op thread pool before any session exists; the count it runs with. A count
    asked for that an earlier stage of this process already fixed otherwise is refused (ORT's pool cannot be
    resized); 0 (the runtime's default) takes whatever was fixed."""
    ort_runtime(threads)
    fixed = fixed_threads()
    if threads and fixed != threads:
        raise UsageError(
            f"--threads {threads}: this process already runs its inference thread pool at {fixed or 'the default'} "
            "threads (ONNX Runtime's pool cannot be resized); profile in a new process"
        )
    return fixed


def bound(requested: Sequence[str], *, skip_unbound: bool, say: Say = lambda _m: None) -> list[str]:
    """The requested providers that bind here: one that does not is refused, or with ``skip_unbound`` skipped
    and said."""
    usable = []
    for name in requested:
        status = runtimes.backend(name).status()
        if status.binds:
            usable.append(name)
        elif not skip_unbound:
            raise ProviderUnavailable(status.reason)
        else:
            say(f"skipped {name}: {status.reason}")
    return usable


def not_run_here(providers: Sequence[str], precision: str) -> dict[str, str]:
    """Providers that support ``precision`` but not on this machine (bf16 without native units) → why."""
    supporting = [p for p in providers if precision in SUPPORTED_PRECISIONS[p]]
    reasons = {p: runtimes.backend(p).runs_here(precision) for p in supporting}
    return {p: reason for p, reason in reasons.items() if reason}


def resolve(settings: ProfileSettings, *, skip_unbound: bool, say: Say = lambda _m: None) -> ProfileSettings:
    """``settings`` with the thread count fixed and the providers that bind; every (provider, precision) cell
    a provider does not run is said, and a precision no bound provider runs is refused."""
    threads = fix_threads(settings.threads)
    providers = bound(settings.providers, skip_unbound=skip_unbound, say=say)
    resolved = replace(settings, providers=providers, threads=threads)  # re-checks the precisions
    for precision in resolved.precisions:
        for provider in sorted(p for p in providers if precision not in SUPPORTED_PRECISIONS[p]):
            say(f"skipped {provider} {precision}: {provider} runs {', '.join(SUPPORTED_PRECISIONS[provider])}")
        refusals = not_run_here(providers, precision)
        runs = [p for p in providers if precision in SUPPORTED_PRECISIONS[p] and p not in refusals]
        if refusals and not runs:
            where = "; ".join(f"--provider {p}: {reason}" for p, reason in refusals.items())
            raise ProviderUnavailable(f"--precision {precision} runs on no provider here ({where}); choose fp32")
        for provider, reason in refusals.items():
            say(f"skipped {provider} {precision}: {reason}")
    return resolved
