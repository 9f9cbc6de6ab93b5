"""Data access. Functions take the session keyword-only and never commit: routes own the unit
of work."""
