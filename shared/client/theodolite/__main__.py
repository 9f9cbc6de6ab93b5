"""``python -m theodolite``: the same command line as ``theodolite``."""

from theodolite.cli import app

app(prog_name="theodolite")
