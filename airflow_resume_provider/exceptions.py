"""Errors of the resume provider. Every message names the DAG, run or task concerned and what to do."""

from __future__ import annotations


class ResumeError(Exception):
    """Base class of every error raised by this provider."""


class ResumeConfigError(ResumeError):
    """The ``resume`` param of a DAG is invalid."""


class NonLinearDagError(ResumeError):
    """A DAG with resume enabled is not a single chain of tasks."""


class StateError(ResumeError):
    """A state file is missing, unreadable, corrupt or fails its integrity check."""


class StateStorageError(StateError):
    """The state folder could not be reached."""


class StateMissingError(StateError):
    """The resume point's state file does not exist."""


class ResumedContextError(ResumeError):
    """The original run's context cannot be presented to a task of a resumed run: the task must not run."""


class StateFolderUnsupportedError(StateError):
    """The state folder is on a log backend that keeps log lines, not files (CloudWatch, Elasticsearch...)."""
