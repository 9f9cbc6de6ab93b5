"""Entry point archives: safe unpacking and checks at upload, graph checks against the tasks."""
