"""Theodolite core: the importable part shared by the api, the worker, the registry and plugins.

Importing any module here has no side effects: no settings are read, no connection is opened.
"""

__version__ = "0.1.0"
