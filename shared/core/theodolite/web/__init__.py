"""Pieces the HTTP services share (FastAPI is their dependency, not the core's: import these
only from a service)."""
