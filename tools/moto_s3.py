"""A local S3 API: ``moto_server`` over HTTP on a free port, with one bucket (tests and benchmarks)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from typing import TYPE_CHECKING, Any

from tools.airflow_stack import BIN, free_port

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def aws_connection(endpoint: str) -> str:
    """An Airflow ``aws`` connection (JSON, for ``AIRFLOW_CONN_<ID>``) pointing at ``endpoint``."""
    return json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
    )


@contextlib.contextmanager
def moto_s3(workdir: Path, bucket: str) -> Iterator[tuple[str, Any]]:
    """Start moto_server, create ``bucket``; yields the endpoint URL and a boto3 S3 client."""
    import boto3
    import botocore.exceptions

    port = free_port()
    with open(workdir / "moto.out", "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out
        )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                s3.create_bucket(Bucket=bucket)
                break
            except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectionClosedError):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(
                        f"moto_server did not come up on {endpoint}; see {workdir / 'moto.out'}"
                    ) from None
                time.sleep(0.2)
        yield endpoint, s3
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
