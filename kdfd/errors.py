"""Errors a user can act on.

Every error raised for bad input derives from `KdfdError`; the command line prints its message as one line and exits
with code 2 (usage and configuration errors), without a traceback unless `--debug` is given.
"""


class KdfdError(Exception):
    """Bad input: the message names the offending value and what is allowed."""


class ConfigError(KdfdError):
    """An invalid configuration value (a suite file, a method parameter, a command-line option)."""


class DataError(KdfdError):
    """Missing or malformed task data (GLUE dir, TSV file, labels)."""


class ModelError(KdfdError):
    """A model that cannot be found or built as asked."""


class StorageError(KdfdError):
    """The results root cannot take a file (read-only, full, over quota): the run stops, since every later job
    would fail alike, and what is already written stays as it was."""


class ExternalError(RuntimeError):
    """A command or service the run relies on failed or is missing (a SLURM command): the environment, not the
    input, so not a `KdfdError`. The command line prints it as one line and exits with 3."""


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or inf during training; the job is recorded as failed at that step.

    Not a `KdfdError`: it is a training failure of one job, not bad input, so the other jobs go on.
    """

    def __init__(self, step: int, term: str, value: float, role: str):
        super().__init__(f"non-finite loss at step {step}: {role} term '{term}' = {value}")
        self.step, self.term, self.value, self.role = step, term, value, role

    def __reduce__(self):  # pickled whole: a data-parallel job's process hands it to the runner (kdfd.parallel)
        return type(self), (self.step, self.term, self.value, self.role)


def one_of(kind: str, value, allowed) -> str:
    """The standard phrase for an unknown name: `unknown task 'foo' (allowed: a, b, c)`."""
    return f"unknown {kind} {value!r} (allowed: {', '.join(sorted(map(str, allowed)))})"
