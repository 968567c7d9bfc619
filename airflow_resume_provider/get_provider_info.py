"""Provider metadata, read by Airflow's providers manager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any

from airflow_resume_provider import __version__

SECTION = "resume"

CONFIG_OPTIONS: dict[str, dict[str, Any]] = {
    "state_folder": {
        "description": (
            "Where the state files (``attempt=<n>.resume.json``) are stored, as a folder URL: a local "
            "path, ``file://...``, ``s3://bucket/prefix``, ``gs://bucket/prefix``, ... Empty: beside the "
            "task logs, i.e. ``[logging] remote_base_log_folder`` when ``[logging] remote_logging`` is "
            "on, else ``[logging] base_log_folder``. All workers, API servers and schedulers must reach it "
            "(``airflow resume check`` shows what a component uses). A run's state is found from what was "
            "recorded for that run, so changing this setting later does not orphan earlier runs.\n"
        ),
        "version_added": "0.1.0",
        "type": "string",
        "example": "s3://my-bucket/airflow-resume",
        "default": "",
    },
    "state_conn_id": {
        "description": (
            "Airflow connection used to reach ``state_folder`` on object storage. Empty: "
            "``[logging] remote_log_conn_id`` when the state folder is on the same kind of storage as "
            "``[logging] remote_base_log_folder`` (e.g. another S3 bucket), else the storage provider's "
            "default connection.\n"
        ),
        "version_added": "0.1.0",
        "type": "string",
        "example": "aws_default",
        "default": "",
    },
    "signing_key": {
        "description": (
            "Secret key for an HMAC-SHA256 signature of every state file and of every resumed run's "
            "record and run id. Set the same value on all components (workers, API servers, schedulers): "
            "a state file edited by anyone without the key is then refused, and so is an unsigned one. "
            "Empty: state files carry a plain SHA-256 digest, which detects corruption but not deliberate "
            "tampering, and resumed runs are signed with ``[api_auth] jwt_secret``, which must then be the "
            "same on all components, workers included. Task code can read the key on a worker: it guards "
            "against people who can write to the storage but do not run task code.\n"
        ),
        "version_added": "0.1.0",
        "type": "string",
        "sensitive": True,
        "example": "a-long-random-secret",
        "default": "",
    },
    "capture_timeout": {
        "description": (
            "Seconds a task waits at most for its state file to be written before it goes on without "
            "it. The run is then recorded as not resumable from that task, and the task is not "
            "affected otherwise. A number greater than 0; an invalid value is reported and the default "
            "is used.\n"
        ),
        "version_added": "0.1.0",
        "type": "float",
        "example": "5",
        "default": "10",
    },
    "retry_sweep_interval": {
        "description": (
            "Seconds between the scheduler's checks for failed runs that are due an automatic retry "
            "(DAGs with params resume.retries > 0) and have none yet, e.g. because a scheduler stopped "
            "right after the failure. Each failure is normally retried within a second by the "
            "scheduler that failed the run; the check is the safety net. A number greater than 0; an "
            "invalid value is reported and the default is used.\n"
        ),
        "version_added": "0.1.0",
        "type": "float",
        "example": "30",
        "default": "60",
    },
    "retry_sweep_lookback": {
        "description": (
            "How far back (seconds since the run ended) the scheduler's check looks for failed runs "
            "still due an automatic retry. Older failures are left alone. A number greater than 0; an "
            "invalid value is reported and the default is used.\n"
        ),
        "version_added": "0.1.0",
        "type": "float",
        "example": "3600",
        "default": "86400",
    },
    "retention_days": {
        "description": (
            "Days the state of a finished run is kept after the run ended. A failed run that ended longer "
            "ago is no longer resumed (reason ``state_expired``), and ``airflow resume cleanup`` deletes "
            "the state files of runs that ended longer ago (``--older-than-days`` overrides it there). "
            "A whole number from 0 to 36500; 0 keeps state forever. An invalid value is reported and the "
            "default is used, except by ``airflow resume cleanup``, which then refuses to delete.\n"
        ),
        "version_added": "0.2.0",
        "type": "integer",
        "example": "90",
        "default": "30",
    },
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-resume-provider",
        "name": "Resume",
        "description": (
            "Job Resume: resume a failed run of a linear DAG at the failed task, with the same inputs.\n"
        ),
        "versions": [__version__],
        "cli": ["airflow_resume_provider.cli.get_cli_commands"],
        "config": {
            SECTION: {
                "description": "Job Resume: where task input state is stored and how it is protected.\n",
                "options": CONFIG_OPTIONS,
            }
        },
    }
