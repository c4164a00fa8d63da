"""The exceptions ablate raises.

Every error a user can cause (a bad study file, a missing dataset, a database URL that does not
answer) derives from :class:`AblateError`; the CLI prints its message as one line and exits with
``exit_code`` instead of showing a traceback.
"""

from __future__ import annotations


class AblateError(Exception):
    """Base class of every error ablate raises on purpose."""

    exit_code: int = 1


class StudyError(AblateError):
    """A study file or trial configuration is invalid (user input: exit code 2)."""

    exit_code = 2


class DataNotFoundError(AblateError):
    """A dataset or pretrained weight file is not where the configuration says."""

    exit_code = 2


class StoreError(AblateError):
    """The result database refused an operation or could not be reached."""


class InfrastructureError(AblateError):
    """The database or the disk failed, not the study (exit code 3).

    A worker that meets one hands its trial back (never marks it failed) and stops; the trial
    resumes from its checkpoint once the fault is gone.
    """

    exit_code = 3


class DatabaseUnavailableError(StoreError, InfrastructureError):
    """The database stayed unreachable (connection lost, server restarting) past the retry window."""

    exit_code = 3


class DiskFullError(InfrastructureError):
    """A file could not be written: no space left on the device."""

    exit_code = 3


class UserURLError(StoreError):
    """A database URL that cannot be used as written (not a URL, an unsupported driver)."""

    exit_code = 2


class NotAblateDatabaseError(StoreError):
    """A read-only command was pointed at a database without ablate's current schema."""

    exit_code = 2


class UserInputError(AblateError):
    """A command-line value that cannot be used: an output path in a missing folder, a format."""

    exit_code = 2


class ReadOnlyQueryError(StoreError):
    """`ablate sql` was given a statement that would write."""

    exit_code = 2


class LaunchError(AblateError):
    """A launch that cannot go ahead: bad options, an engine that does not answer (exit code 2)."""

    exit_code = 2
