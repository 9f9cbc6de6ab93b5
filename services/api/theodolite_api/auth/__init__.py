"""Who is calling and what they may do: API keys and OIDC tokens become a ``Caller``; routes ask
the caller, never the request."""
