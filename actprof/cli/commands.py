"""Every command, registered on the app by importing its module, in the order data flows (and ``--help``
lists them)."""

# isort: skip_file
from actprof.cli import training  # train-export, run
from actprof.cli import measuring  # profile, microbench, swap
from actprof.cli import results  # report, diff, optimize, env
from actprof.cli import history  # noqa: F401  (history add, history show)
from actprof.cli import reproducing  # reproduce

__all__ = ["measuring", "reproducing", "results", "training"]
