"""Wire schemas, in families per resource: XCreate / XPublic / XsPublic(data, count)."""
