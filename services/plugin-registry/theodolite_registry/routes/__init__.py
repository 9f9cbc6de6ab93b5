"""HTTP routes, one module per resource: thin (validate, open the unit of work, call, map)."""
