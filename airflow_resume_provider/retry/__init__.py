"""
Resume on retry: bounded, automatic DAG-run-level retries, created on the scheduler's side.

- :mod:`.handoff`: the scheduler side. Its ``on_dag_run_failed`` listener hands the failed run to a
  worker process over a pipe and returns at once; it never touches the scheduler's session (a
  commit there stops the scheduler). It starts the worker, and starts a new one when it died.
- :mod:`.worker`: the worker process (``python -m airflow_resume_provider.retry.worker``): waits until
  the failure is committed, schedules the retry, and sweeps for retries that are due but missing.
- :mod:`.scheduling`: deciding and creating one retry through the resume service, and the sweep.
- :mod:`.decision`: whether a failure is retried, a pure function of recorded facts.
"""
