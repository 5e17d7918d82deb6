"""Exception types of biomlff.

Every user mistake (bad file, bad option, unphysical input) raises :class:`BiomlffError` or one of
its subclasses with a message that names the problem (file, frame, field, value). The command line
prints such errors as one line and exits non-zero; anything else is a bug and shows a traceback.
"""


class BiomlffError(Exception):
    """A user-facing error: the message alone tells the user what to fix."""


class DataError(BiomlffError, ValueError):
    """Invalid, inconsistent or unreadable data (file, frame and field named in the message)."""


class ConfigError(BiomlffError, ValueError):
    """An invalid option or combination of options."""


class ModelError(BiomlffError):
    """A model cannot be built or evaluated for this input (unknown element, cell too small, ...)."""


class TrainingError(BiomlffError, FloatingPointError):
    """Training cannot go on (e.g. the loss or gradient stayed non-finite); the message says what
    to change (learning rate, clipping, labels)."""


class MissingDependencyError(BiomlffError, ImportError):
    """An optional dependency is missing; the message names the pip command that installs it."""


class PeriodicityError(ConfigError, DataError, ModelError):
    """A structure's periodicity is not usable (mixed pbc such as a slab, or pbc without a valid cell):
    raised by the one rule :func:`biomlff.geometry.cell_from_pbc` wherever a structure enters a model,
    and catchable as the ConfigError, DataError or ModelError the paths raised before."""


class BiomlffWarning(UserWarning):
    """Something the user should know although the work goes on (an assumed unit, implausible labels,
    data that cannot support an analysis); the command line prints it as one ``biomlff: warning:``
    line."""
