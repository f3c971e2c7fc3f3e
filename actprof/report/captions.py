"""The sentences under the tables, written once for every format: what the numbers are and how they were
chosen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from actprof.report.decision_tables import primary_target
from actprof.report.training_tables import contention_note, lr_time_words

if TYPE_CHECKING:
    from actprof.schema.reports import ReportRecord
    from actprof.schema.swap import SwapRecord


ABLATION_TWINS = (
    "A swapped graph that is, weights aside, one already timed is timed once: every ReLU swap is the ReLU "
    "model's graph, and all identity swaps are one graph."
)


def decision_caption(report: ReportRecord) -> str:
    """What the decision table's numbers are: the target and how it was chosen, where the words apply."""
    if report.target_accuracy:
        target = f"Target: {100 * report.target_accuracy:.0f}% validation accuracy ({report.target_rule}). "
    else:
        target = f"No target accuracy ({report.target_rule or 'the baseline reached none'}). "
    network = " ".join(filter(None, [f"Network: {report.network_words}.", contention_note(report)])) + " "
    if report.lr_study:
        base_lr = next((f"{s.lr:g}" for s in report.activations if s.name == report.baseline and s.lr), "—")
        network += (
            f"Each activation at its own learning rate, chosen on the validation split ({report.baseline}: {base_lr}). "
        )
    if report.train_stack:
        seconds = (
            f"Steps: to the target, from the curve (the same on any stack). Seconds: those steps × the step time on "
            f"{report.train_stack}, the stack the verdicts are priced on (the step table says what each stack costs). "
        )
    else:
        seconds = "Seconds: the runs' own training clock (no step time was measured: older results). "
    return (
        network + target + seconds + "s saved: the baseline's seconds to the target minus the activation's "
        f"(positive: it trains faster). × {report.baseline}: median per-round latency ratio at batch 1 on each "
        f"deployment [95% CI]. The verdict and break-even are for {primary_target(report)} at batch 1: wins "
        "(better on one side, worse on neither), trade-off (the break-even decides), tie, loses; unsettled where "
        "the training difference cannot be told from the seed spread (the verdict in words says why)."
    )


def shared_lr_note(report: ReportRecord) -> str:
    study = report.lr_study
    return (
        f"What a single-rate study would say: every activation at lr {study.shared_lr:g}, {study.shared_rule}; "
        "the target there is the highest whole percent of validation accuracy "
        f"{report.baseline} reached in every seed at that rate. "
        f"Δ: {lr_time_words(report)} to the target minus the baseline's, paired by seed"
        + ("; its interval holds the step ratio's own interval" if report.train_stack else "")
        + "; a Δ no larger than the resolution (the median validation bracket) is not evidence."
    )


def swap_caption(record: SwapRecord) -> str:
    fed = "; ".join(
        f"{spec.name} {'x'.join(map(str, spec.shape)) or 'scalar'} {spec.dtype}, {spec.source}"
        for spec in record.inputs
    )
    freed = (
        f" To run at other batch sizes, the hard-coded batch of Reshape {', '.join(record.batch_reshapes)} was made -1."
        if record.batch_reshapes
        else ""
    )
    return (
        f"{record.model} (opset {record.opset}); input{'s' if len(record.inputs) > 1 else ''} {fed}. "
        f"{record.note.capitalize()}. Ratios: median of per-round ratios to the original on the "
        f"same runtime and precision, each runtime's variants in rounds of their own [95% CI].{freed}"
    )
