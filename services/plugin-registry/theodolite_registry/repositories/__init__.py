"""Data access, one module per resource: the session keyword-only, never a commit."""
