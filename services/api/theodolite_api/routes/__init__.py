"""HTTP routes, one module per resource. Routes validate, open the unit of work, call a
repository or domain function and map the result."""
