"""Names the provider persists in Airflow (XCom keys, conf key, run-id prefix). Never rename them."""

from __future__ import annotations

#: XCom pushed by a task's capture: ``{"path": <state file URL>, "digest": <its digest>}``.
XCOM_STATE_REF = "resume_state_ref"
#: XCom pushed when a capture failed: ``{"reason": str, "try_number": int}``.
XCOM_CAPTURE_ERROR = "resume_capture_error"
#: XCom pushed by a successful task that pushed XComs under keys other than ``return_value``.
XCOM_KEYS = "resume_xcom_keys"

BOOKKEEPING_XCOM_KEYS = frozenset({XCOM_STATE_REF, XCOM_CAPTURE_ERROR, XCOM_KEYS})
RETURN_KEY = "return_value"

#: Key in a resumed run's ``conf`` with the provider's record of where the run comes from.
CONF_KEY = "__resume__"
