"""What the api shows an operator: its metrics (``/metrics`` on the internal listener)."""
