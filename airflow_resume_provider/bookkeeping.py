"""Names the provider persists in Airflow (XCom keys, conf key, run-id prefix). Never rename them."""

from __future__ import annotations

#: XCom pushed by a task's capture: ``{"path": <state file URL>, "digest": <its digest>,
#: "xcom_keys": [<keys other than return_value the task pushed>]}``; pushed again when the task pushes a
#: new key, since the Execution API cannot list a task's XCom keys.
XCOM_STATE_REF = "resume_state_ref"
#: XCom pushed when a capture failed: ``{"reason": str, "try_number": int, "stage": str}``.
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
