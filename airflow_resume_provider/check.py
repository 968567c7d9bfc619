"""
``airflow resume check``: what this component resolves as its state folder, and whether it works.

Run it on each kind of component (worker, API server, scheduler): they must all reach the same folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from airflow_resume_provider import conf
from airflow_resume_provider.exceptions import ProviderConfigError
from airflow_resume_provider.state import storage
from airflow_resume_provider.state.paths import StateLocation, folder_url

PROBE_FOLDER = ".resume-check"


@dataclass
class CheckReport:
    state_folder: str = ""
    state_conn_id: str = ""
    folder_source: str = ""
    signing: str = ""
    run_records: str = ""
    probe: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        return [
            f"State folder:   {self.state_folder or '(none)'} ({self.folder_source})",
            f"Connection:     {self.state_conn_id or '(none)'}",
            f"Signing:        {self.signing}",
            f"Run records:    {self.run_records}",
            f"Probe:          {self.probe}",
            *(f"PROBLEM: {problem}" for problem in self.problems),
            "OK" if self.ok else f"{len(self.problems)} problem(s)",
        ]


def _folder_source() -> str:
    if conf.problem("state_folder") or conf.state_folder():
        return "[resume] state_folder"
    if conf.remote_base_log_folder():
        return "[logging] remote_base_log_folder, remote logging is on"
    return "[logging] base_log_folder"


def run_check() -> CheckReport:
    report = CheckReport()
    report.problems += [str(problem) for problem in conf.problems()]
    try:
        folder, conn_id = storage.configured_folder()
    except ProviderConfigError:
        report.folder_source = "[resume] state_folder"
        report.probe = "not tried"
        return report  # the problem is listed
    report.folder_source = _folder_source()
    report.state_conn_id = conn_id
    try:
        report.state_folder = folder_url(folder)
    except ValueError as err:
        report.problems.append(str(err))
        return report
    try:
        key = conf.signing_key()
    except ProviderConfigError:
        key = b""
        report.signing = "unusable: see the problem below"
    else:
        report.signing = (
            "on: state files carry an HMAC with [resume] signing_key"
            if key
            else "off: state files carry a SHA-256 digest (detects corruption, not tampering)"
        )
    if key:
        report.run_records = "signed with [resume] signing_key"
    elif conf.run_record_secret():
        report.run_records = "signed with [api_auth] jwt_secret"
    else:
        report.run_records = "cannot be signed"
        report.problems.append(
            "neither [resume] signing_key nor [api_auth] jwt_secret is set: resumed runs cannot be created "
            "or verified; set one of them to the same value on every component"
        )
    problem = storage.folder_problem(report.state_folder)
    if problem:
        report.probe = "not tried"
        report.problems.append(problem)
        return report
    report.probe = _probe(StateLocation(url=report.state_folder, conn_id=conn_id), report)
    return report


def _probe(folder: StateLocation, report: CheckReport) -> str:
    name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
    target = StateLocation(url=f"{folder.url}/{PROBE_FOLDER}/{name}", conn_id=folder.conn_id)
    payload = json.dumps(
        {"host": socket.gethostname(), "at": datetime.now(timezone.utc).isoformat()}
    ).encode()
    try:
        storage.write_bytes(storage.prepare(target), payload)
        read = storage.read_bytes(target)
    except Exception as err:
        report.problems.append(
            f"could not write and read {PROBE_FOLDER}/{name}: {storage.describe_error(err)}"
        )
        return "failed"
    finally:
        with contextlib.suppress(Exception):
            storage.delete(target)
    if read != payload:
        report.problems.append(f"{PROBE_FOLDER}/{name} read back different bytes than were written")
        return "failed"
    return f"wrote, read back and deleted {PROBE_FOLDER}/{name}"
