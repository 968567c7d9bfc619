"""
Every name the provider persists outside its own code: XCom keys, the conf key, the DAG param, the
run-id prefix, the DAG tag, state file suffixes, metric names and the OpenLineage facet's name. Users, stored runs and dashboards rely
on them: never rename one.
"""

from __future__ import annotations

#: XCom pushed by a task's capture: ``{"path": <state file URL>, "digest": <its digest>,
#: "xcom_keys": [<keys other than return_value the task pushed>]}``; pushed again when the task pushes a
#: new key, since the Execution API cannot list a task's XCom keys.
XCOM_STATE_REF = "resume_state_ref"
#: XCom pushed when a capture failed: ``{"reason": str, "try_number": int, "stage": str}``, plus
#: ``"origin"`` and ``"origin_reason"`` (the first task whose state was lost, and why) when an upstream one was.
XCOM_CAPTURE_ERROR = "resume_capture_error"
#: ``stage`` of a capture error: the attempt's state is incomplete (not written, not announced, a key
#: missing from the announcement, or its upstream's state incomplete)...
STAGE_CAPTURE = "capture"
#: ...or only the failure could not be added to a state file that is otherwise complete.
STAGE_FAILURE = "failure"

BOOKKEEPING_XCOM_KEYS = frozenset({XCOM_STATE_REF, XCOM_CAPTURE_ERROR})
RETURN_KEY = "return_value"

#: Key in a resumed run's ``conf`` with the provider's record of where the run comes from.
CONF_KEY = "__resume__"

#: The DAG param that opts a DAG in: ``params={"resume": ...}``.
PARAM_NAME = "resume"
#: Tag the DAG policy puts on DAGs with automatic retries (the retry sweep reads only their runs).
RETRIES_TAG = "resume:retries"

#: Run ids of resumed runs start with this: ``resume__<root run>__<n>__<tag>``.
RESUME_RUN_PREFIX = "resume__"
#: Key of the signature in a resumed run's ``conf["__resume__"]`` record.
SIGNATURE_KEY = "signature"

#: A state file is the attempt's log file name with this suffix instead of ``.log``...
STATE_SUFFIX = ".resume.json"
#: ...and the API server's kill marker beside it this one.
KILLED_SUFFIX = ".resume-killed.json"

# Metric names (Airflow's ``Stats``; see metrics.py for their tags).
CAPTURE_WRITTEN = "resume.capture.written"
CAPTURE_FAILED = "resume.capture.failed"
CAPTURE_DURATION = "resume.capture.duration"
CREATED = "resume.created"
CREATE_DURATION = "resume.create.duration"
REFUSED = "resume.refused"
RETRY_SCHEDULED = "resume.retry.scheduled"
RETRY_NOT_RETRIED = "resume.retry.not_retried"

#: The run facet in the OpenLineage events of a resumed run's tasks (``lineage.py``).
OPENLINEAGE_FACET = "airflowResume"
