"""
Errors of the resume provider. Every message names the DAG, run or task concerned and what to do.

Every error a caller may see derives from :class:`ResumeError` and says how the REST API answers it
(``status_code``) and with which ``reason_code``: the API maps them in one handler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_resume_provider.models import ReasonCode

if TYPE_CHECKING:
    from airflow_resume_provider.models import Verdict


class ResumeError(Exception):
    """Base class of every error raised by this provider; unexpected ones answer 500 ``resume_failed``."""

    status_code: int = 500
    reason_code: ReasonCode = ReasonCode.RESUME_FAILED


class ResumeConfigError(ResumeError):
    """The ``resume`` param of a DAG is invalid."""

    status_code = 422
    reason_code = ReasonCode.INVALID_CONFIG


class NonLinearDagError(ResumeError):
    """A DAG with resume enabled is not a single chain of tasks."""

    status_code = 422
    reason_code = ReasonCode.INVALID_CONFIG


class BadRequestError(ResumeError):
    """A request the provider cannot carry out as asked (too many runs, a date out of range...)."""

    status_code = 422
    reason_code = ReasonCode.BAD_REQUEST


class InputsInvalidError(ResumeError):
    """A changed input is refused: an unknown name, a task-level param, or a value the DAG's params refuse."""

    status_code = 422
    reason_code = ReasonCode.PARAMS_INVALID

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        #: The param (or conf key) refused, for the page to show the message beside its field.
        self.param = param


class InputChangesDisabledError(ResumeError):
    """Inputs may not be changed on this deployment (``[core] dag_run_conf_overrides_params`` is off)."""

    status_code = 403
    reason_code = ReasonCode.INPUT_CHANGES_DISABLED


class ResumedWithOtherInputsError(ResumeError):
    """The run was already resumed, with other inputs: one resumed run per failed run."""

    status_code = 409
    reason_code = ReasonCode.RESUMED_WITH_OTHER_INPUTS


class RunNotFoundError(ResumeError):
    """The DAG or the run does not exist."""

    status_code = 404
    reason_code = ReasonCode.RUN_NOT_FOUND


class NotResumableError(ResumeError):
    """The run cannot be resumed; ``verdict.reason`` says why."""

    status_code = 409

    def __init__(self, verdict: Verdict):
        super().__init__(verdict.reason)
        self.verdict = verdict
        if verdict.reason_code is not None:
            self.reason_code = verdict.reason_code


class ChildPermissionError(ResumeError):
    """Resuming a run would resume a child run of a DAG whose runs the user may not trigger."""

    status_code = 403
    reason_code = ReasonCode.CHILD_NOT_RESUMABLE


class RunIdTakenError(ResumeError):
    """The id reserved for a run's resumed run is taken by a run the provider did not create."""

    status_code = 409
    reason_code = ReasonCode.RUN_ID_TAKEN


class SigningUnavailableError(ResumeError):
    """No secret to sign or verify the provider's run records with on this component."""

    status_code = 503
    reason_code = ReasonCode.SIGNING_UNAVAILABLE


class ProviderConfigError(ResumeError):
    """A ``[resume]`` option that protects data or security has a value the provider cannot use."""

    status_code = 503
    reason_code = ReasonCode.PROVIDER_CONFIG_INVALID


class StateError(ResumeError):
    """A state file is missing, unreadable, corrupt or fails its integrity check."""

    status_code = 409
    reason_code = ReasonCode.STATE_INVALID


class StateStorageError(StateError):
    """The state folder could not be reached."""

    status_code = 503
    reason_code = ReasonCode.STATE_UNREACHABLE


class StateMissingError(StateError):
    """The resume point's state file does not exist."""

    reason_code = ReasonCode.STATE_MISSING


class ResumedContextError(ResumeError):
    """The original run's context cannot be presented to a task of a resumed run: the task must not run."""


class StateFolderUnsupportedError(StateError):
    """The state folder is on a log backend that keeps log lines, not files (CloudWatch, Elasticsearch...)."""

    reason_code = ReasonCode.STATE_NOT_RECORDED


class LinkRefused(ValueError):
    """A state link points somewhere a state file of the expected task cannot be; it is not followed."""


class SchedulerGone(Exception):
    """The scheduler that started the retry worker is gone: the worker stops."""
