"""gradfit's exceptions. Each carries the message the command line prints.

``GradfitError`` is the base class; ``FailedMinimization`` is a
``NumericalError``.
"""

from ._core import (
    FailedMinimization,
    FileError,
    GradfitError,
    InvalidInput,
    InvalidPatch,
    InvalidToyFile,
    InvalidWorkspace,
    NumericalError,
)

#: pyhf's name for an invalid patchset.
InvalidPatchSet = InvalidPatch


class GradfitWarning(UserWarning):
    """A note about a configuration (the command line prints it as a warning)."""


__all__ = [
    "GradfitError",
    "InvalidWorkspace",
    "InvalidPatch",
    "InvalidPatchSet",
    "InvalidInput",
    "NumericalError",
    "FailedMinimization",
    "InvalidToyFile",
    "FileError",
    "GradfitWarning",
]
