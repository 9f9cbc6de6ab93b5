"""Wire models, one module per resource, separate from the table models."""
