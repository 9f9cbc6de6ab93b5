"""Following a job as it runs: a live status, progress and log display on a terminal, plain
lines otherwise (logs, CI)."""

from __future__ import annotations

from collections import deque
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

LOG_LINES_SHOWN = 10


class JobDisplay:
    def __init__(self, job: Any) -> None:
        self.job_id = str(job.id)
        self.status = job.status
        self.attempt = job.attempt
        self.fraction: float | None = None
        self.note = ""
        self.lines: deque[str] = deque(maxlen=LOG_LINES_SHOWN)

    def apply(self, event: Any) -> str | None:
        """Take one event in; a plain line saying what changed, if anything did."""
        if event.event == "status":
            self.status, self.attempt = event.status, event.attempt
            detail = f" ({event.detail})" if event.detail else ""
            return f"status: {event.status}{detail}"
        if event.event == "progress":
            self.fraction = event.fraction
            self.note = " ".join(p for p in (event.step, event.message) if p)
            percent = f"{event.fraction:.0%} " if event.fraction is not None else ""
            return f"progress: {percent}{self.note}".rstrip()
        if event.event == "log":
            self.lines.extend(event.lines)
        return None

    def render(self) -> Group:
        colour = {"succeeded": "green", "failed": "red", "running": "cyan"}.get(
            self.status, "yellow"
        )
        head = Text.assemble(
            ("job ", "dim"),
            self.job_id,
            "  ",
            (self.status, f"bold {colour}"),
            (f"  attempt {self.attempt}", "dim"),
        )
        parts: list[Any] = [head]
        if self.fraction is not None or self.note:
            bar = Table.grid(padding=(0, 1))
            bar.add_row(
                ProgressBar(total=1.0, completed=self.fraction or 0.0, width=40),
                f"{self.fraction:.0%}" if self.fraction is not None else "",
                self.note,
            )
            parts.append(bar)
        if self.lines:
            parts.append(Panel("\n".join(self.lines), title="log", title_align="left"))
        return Group(*parts)


def follow_job(client: Any, job: Any, console: Console, *, timeout_s: float | None = None) -> Any:
    """Follow the job to its end; the final job."""
    display = JobDisplay(job)
    if not console.is_terminal:

        def say(event: Any) -> None:
            line = display.apply(event)
            if line is not None:
                console.print(line, highlight=False)

        return client.wait(job.id, on_event=say, timeout_s=timeout_s)
    with Live(display.render(), console=console, refresh_per_second=8) as live:

        def show(event: Any) -> None:
            display.apply(event)
            live.update(display.render())

        return client.wait(job.id, on_event=show, timeout_s=timeout_s)
