"""Outbound clients: the MLflow tracking server (read over REST) and the plugin registry."""
