"""What an operator sees: log context and format, trace context in event envelopes."""
