"""What the registry shows an operator: its metrics (``/metrics``)."""
