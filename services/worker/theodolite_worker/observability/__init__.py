"""What a worker shows an operator: its metrics (``THEODOLITE_WORKER_METRICS_PORT``)."""
