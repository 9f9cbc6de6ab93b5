"""Jobs: the state machine and the operations that move a job through it."""
