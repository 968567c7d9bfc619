"""The Resume page shown as a tab on Airflow's DAG run page."""
