"""Job Resume for Apache Airflow: resume a failed linear DAG run at the failed task."""

from __future__ import annotations

__version__ = "0.2.0"

__all__ = ["__version__"]
