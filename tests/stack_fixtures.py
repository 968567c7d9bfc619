"""
Fixtures for end-to-end and browser tests: one real Airflow stack per test session, shared.

With ``RESUME_TEST_DB=sqlite`` (default) the stack uses SQLite and remote logging to S3 served by
``moto_server`` over HTTP; with ``RESUME_TEST_DB=postgres`` it uses PostgreSQL and local logs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.airflow_stack import AirflowStack, free_port, wait_for

BUCKET = "airflow-logs"


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory):
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.out", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    import boto3
    import botocore.exceptions

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )

    def bucket_created() -> bool:
        try:
            s3.create_bucket(Bucket=BUCKET)
            return True
        except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectionClosedError):
            return False

    wait_for(bucket_created, timeout=30, interval=0.2, what="moto_server up")
    yield endpoint, s3
    proc.terminate()
    proc.wait(timeout=10)


def moto_connection(endpoint: str) -> str:
    return json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
    )


@pytest.fixture(scope="session")
def backend() -> str:
    return os.environ.get("RESUME_TEST_DB", "sqlite")


@pytest.fixture(scope="session")
def stack(backend, tmp_path_factory, request):
    extra_env = {}
    s3 = None
    if backend == "sqlite":
        endpoint, s3 = request.getfixturevalue("moto_endpoint")
        extra_env = {
            "AIRFLOW__LOGGING__REMOTE_LOGGING": "True",
            "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER": f"s3://{BUCKET}/logs",
            "AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID": "aws_moto",
            "AIRFLOW_CONN_AWS_MOTO": moto_connection(endpoint),
        }
    airflow = AirflowStack(
        home=tmp_path_factory.mktemp("airflow-e2e"), backend=backend, extra_env=extra_env, s3=s3
    )
    try:
        airflow.start()
        yield airflow
    finally:
        airflow.stop()
        for name in ("scheduler", "api-server", "dag-processor"):
            text = airflow.component_log(name)
            assert "UNEXPECTED COMMIT" not in text, f"{name} logged an UNEXPECTED COMMIT"
