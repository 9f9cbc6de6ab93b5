"""Parameter sweeps: submitting a grid as child jobs, summarising them, drawing the figure."""
