"""The training step on each stack: what a step of each activation's network costs where users train, and what
actprof's own speed-ups buy over the plain network (so that a reader sees they do not move the verdict)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from actprof.report.decision_tables import trained
from actprof.report.format import interval, num
from actprof.schema.reports import ActivationSummary, StepBrief
from actprof.schema.training import reached

if TYPE_CHECKING:
    from actprof.schema.reports import ReportRecord
    from actprof.schema.steps import StackIdentity, StepCostRecord


def stacks_timed(report: ReportRecord) -> list[str]:
    return list(dict.fromkeys(b.stack for s in report.activations for b in s.steps))


def step_seconds(report: ReportRecord) -> dict[str, float]:
    """Each trained activation's seconds per step on the stack the verdicts are priced on ({} for none): as
    ``analysis.pricing.Pricing`` prices them, the baseline's step × the activation's paired ratio to it."""
    on_stack = {
        s.name: b for s in trained(report) for b in s.steps if report.train_stack and b.stack == report.train_stack
    }
    baseline = on_stack.get(report.baseline)
    if baseline is None:
        return {}
    prices = {name: baseline.ms * b.vs_baseline.value / 1e3 for name, b in on_stack.items() if b.vs_baseline}
    return prices | {report.baseline: baseline.ms / 1e3}


def seconds_to_target(report: ReportRecord, s: ActivationSummary) -> float | None:
    """As the decision table shows it: the mean over the seeds that reached the target (one seed: that run),
    priced on the report's stack where one was timed (steps × its step time), else on the runs' own clock."""
    if not report.target_accuracy:
        return None
    level = f"{100 * report.target_accuracy:.0f}%"
    price = step_seconds(report).get(s.name.split("+")[0])
    if price is not None:
        steps = [n for n in s.steps_to_target if n is not None]
        return price * sum(steps) / len(steps) if steps else None
    over_seeds = s.over_seeds.get(f"seconds to {level}")
    hit = reached(s.time_to_accuracy, report.target_accuracy)
    return over_seeds.mean if over_seeds is not None and over_seeds.n else (hit.seconds if hit else None)


def step_rows(report: ReportRecord) -> list[dict[str, str]]:
    """Per activation: ms per step on each stack, the ratio to the baseline's step there, and how much faster
    the fast trainer's step is than the plain network's (eager ÷ actprof)."""
    steps = {s.name: {b.stack: b for b in s.steps} for s in trained(report) if s.steps}
    return _rows(steps, stacks_timed(report), report.baseline)


def cost_rows(record: StepCostRecord) -> list[dict[str, str]]:
    """The same rows from a step-time record alone (``actprof step-time``)."""
    steps: dict[str, dict[str, StepBrief]] = {}
    for c in record.costs:
        steps.setdefault(c.activation, {})[c.stack] = StepBrief(
            c.stack, c.stats.p50_ms, c.vs_baseline, c.compile_seconds
        )
    stacks = list(dict.fromkeys(c.stack for c in record.costs))
    return _rows(steps, stacks, record.baseline or "the baseline")


def _rows(steps: dict[str, dict[str, StepBrief]], stacks: list[str], baseline: str) -> list[dict[str, str]]:
    rows = []
    for name, on in steps.items():
        row = {"activation": name}
        for stack in stacks:
            brief = on.get(stack)
            row[f"ms/step {stack}"] = num(brief.ms, ".1f") if brief else "—"
            row[f"× {baseline} {stack}"] = interval(brief.vs_baseline, ".2f", "×") if brief else "—"
        compiled = on.get("compile")
        if compiled is not None and compiled.compile_seconds is not None:
            row["compile s"] = f"{compiled.compile_seconds:.1f}"
        if "eager" in on and "actprof" in on:
            row["actprof speed-up over eager"] = f"{on['eager'].ms / on['actprof'].ms:.2f}×"
        rows.append(row)
    return rows


def _optimizer(identity: StackIdentity) -> str:
    """The optimizer a stack ran, as its record names it ("Adam (torch's default implementation)")."""
    return identity.optimizer or "the run's optimizer, torch's default implementation"


def step_note(report: ReportRecord | StepCostRecord) -> str:
    """What the step table's figures are, and which stack priced the verdict."""
    if not report.stacks:
        return ""
    first = report.stacks[0]
    parts = [
        f"One training step of each network at its batch, {first.precision} on {first.device}, {first.threads} "
        "threads; median of interleaved rounds per stack, ratio to the baseline's step on the same stack [95% CI]."
    ]
    for identity in report.stacks:
        if identity.stack == "eager":
            parts.append(f"eager: the network as a user writes it (torch's layers; {_optimizer(identity)}).")
        elif identity.stack == "compile":
            parts.append("compile: the same through torch.compile (compile time apart).")
        elif identity.stack == "actprof":
            parts.append(f"actprof: its fast trainer, the same function ({identity.speedups() or 'no speed-ups'}).")
    if getattr(report, "train_stack", ""):
        parts.append(
            f"The verdicts' seconds are steps × the step on {report.train_stack}: actprof's own speed-ups make "
            "experiments cheap and do not move them."
        )
    return " ".join(parts)
