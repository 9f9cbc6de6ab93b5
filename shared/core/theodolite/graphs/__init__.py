"""Task graphs (``graph.yaml``): parsing, static validation and execution as Prefect flows."""
