"""One small exception hierarchy; every error a user can cause maps to a documented exit code.

Exit codes: 0 success, 1 runtime failure, 2 usage or input error, 3 an inconclusive change under
``actprof diff --strict``, 4 a regression found by ``actprof diff`` (its own code, so that CI tells a regression
from actprof failing), 130 interrupted (see README).
"""

from __future__ import annotations

EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_INCONCLUSIVE = 3
EXIT_REGRESSION = 4
EXIT_INTERRUPTED = 130


class ActprofWarning(UserWarning):
    """Something the user should know that does not stop the command (the CLI prints it in one line)."""


class ActprofError(Exception):
    """Base class: the message is one line that names the fix."""

    exit_code = EXIT_RUNTIME


class UsageError(ActprofError):
    """A bad option value or an unknown name."""

    exit_code = EXIT_USAGE


class DataError(ActprofError):
    """MNIST files missing, truncated, corrupt or inconsistent."""

    exit_code = EXIT_USAGE


class ModelFileError(ActprofError):
    """An ONNX or record file that is missing, corrupt, unsafe or of an unknown schema."""

    exit_code = EXIT_USAGE


class ProviderUnavailable(ActprofError):
    """An execution provider was requested but does not bind on this machine."""

    exit_code = EXIT_USAGE


class DeviceUnavailable(ActprofError):
    """Training on CUDA was requested but PyTorch sees no usable GPU."""

    exit_code = EXIT_USAGE


class TrainingDiverged(ActprofError):
    """The loss became NaN or infinite."""

    exit_code = EXIT_RUNTIME


class SweepFailed(ActprofError):
    """Some trainings of a sweep failed; the others are saved and a second run resumes."""

    exit_code = EXIT_RUNTIME


class RegressionFound(ActprofError):
    """``actprof diff``: a latency ratio or an accuracy regressed beyond the threshold."""

    exit_code = EXIT_REGRESSION


class InconclusiveChange(ActprofError):
    """``actprof diff --strict``: a change whose interval straddles the threshold (measure it again, longer)."""

    exit_code = EXIT_INCONCLUSIVE


class RuntimeInstallError(ActprofError):
    """``--runtime-versions``: a runtime release that cannot be installed into its own environment here."""

    exit_code = EXIT_USAGE


class ParityError(ActprofError):
    """The exported ONNX model does not reproduce the PyTorch model."""

    exit_code = EXIT_RUNTIME


class OutputError(ActprofError):
    """An output location that cannot be written (permissions, disk full)."""

    exit_code = EXIT_USAGE


class ExportFailed(ActprofError):
    """A network the ONNX exporter cannot export (a user's own, say)."""

    exit_code = EXIT_USAGE


class QuantizationError(ActprofError):
    """A model that ONNX Runtime's quantizer cannot turn into an int8 model."""

    exit_code = EXIT_USAGE
