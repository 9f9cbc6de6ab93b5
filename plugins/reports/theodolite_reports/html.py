"""A one-page HTML report: tables and figures of a job in one self-contained file."""

from __future__ import annotations

import base64
import html
from datetime import UTC, datetime
from typing import Any

from matplotlib.figure import Figure

from theodolite.sdk import current, task
from theodolite.sdk.checks import bad_input
from theodolite_reports._figures import png_bytes

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
figure { display: inline-block; margin: 0.5rem; vertical-align: top; }
figcaption { font-size: 0.85rem; color: #555; text-align: center; }
img { max-width: 28rem; }
.meta { color: #666; font-size: 0.85rem; }
"""


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return html.escape(str(value))
    if isinstance(value, int | float):
        return f"{value:.4g}"
    if hasattr(value, "item"):
        return _cell(value.item())
    return html.escape(str(value))


def _table(name: str, value: Any) -> str:
    """A number, a mapping of numbers (two columns) or a mapping of mappings (a matrix)."""
    rows: list[list[str]]
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        columns = list(dict.fromkeys(c for row in value.values() for c in row))
        header = ["", *columns]
        rows = [[str(r), *(_cell(value[r].get(c, "")) for c in columns)] for r in value]
    elif isinstance(value, dict):
        header = ["", "value"]
        rows = [[str(k), _cell(v)] for k, v in value.items()]
    else:
        header = ["", "value"]
        rows = [[name, _cell(value)]]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + f"<td>{html.escape(r[0])}</td>" + "".join(f"<td>{c}</td>" for c in r[1:]) + "</tr>"
        for r in rows
    )
    return f"<h2>{html.escape(name)}</h2>\n<table><tr>{head}</tr>{body}</table>"


@task
def html_report(
    title: str,
    summary: str = "",
    tables: dict[str, Any] | None = None,
    figures: dict[str, Figure] | None = None,
) -> str:
    """A one-page HTML report with the job's tables and figures (embedded as PNG): log it as an
    output of kind ``artifact`` (e.g. path ``report.html``).

    Args:
        title: the report's title
        summary: a paragraph on what the job shows
        tables: name -> a number, a mapping of numbers, or a mapping of mappings (rows x columns)
        figures: caption -> a figure from a reports task
    """
    name = "reports.html_report"
    if not title.strip():
        raise bad_input(name, "title", "is empty")
    context = current()
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">job {html.escape(context.job_id or "local")}, seed {context.seed}, '
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC</p>",
    ]
    if summary:
        parts.append(f"<p>{html.escape(summary)}</p>")
    for table_name, value in (tables or {}).items():
        parts.append(_table(table_name, value))
    if figures:
        parts.append("<h2>Figures</h2>")
        for caption, figure in figures.items():
            if not isinstance(figure, Figure | bytes):
                raise bad_input(
                    name, "figures", f"{caption!r} is {type(figure).__name__}, not a figure"
                )
            encoded = base64.b64encode(png_bytes(figure)).decode()
            parts.append(
                f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{encoded}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)
