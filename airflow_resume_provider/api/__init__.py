"""The provider's FastAPI app, mounted at ``/resume`` on the Airflow API server."""
