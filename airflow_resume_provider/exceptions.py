"""Errors of the resume provider. Every message names the DAG, run or task concerned and what to do."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_resume_provider.resumability import Verdict


class ResumeError(Exception):
    """Base class of every error raised by this provider."""


class ResumeConfigError(ResumeError):
    """The ``resume`` param of a DAG is invalid."""


class NonLinearDagError(ResumeError):
    """A DAG with resume enabled is not a single chain of tasks."""


class RunNotFoundError(ResumeError):
    """The DAG or the run does not exist."""


class NotResumableError(ResumeError):
    """The run cannot be resumed; ``verdict.reason`` says why."""

    def __init__(self, verdict: Verdict):
        super().__init__(verdict.reason)
        self.verdict = verdict


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


class LinkRefused(ValueError):
    """A state link points somewhere a state file of the expected task cannot be; it is not followed."""


class SchedulerGone(Exception):
    """The scheduler that started the retry worker is gone: the worker stops."""
