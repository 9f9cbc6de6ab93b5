"""Pipelines: DAGs of stages whose parameters reference what earlier stages produced."""
