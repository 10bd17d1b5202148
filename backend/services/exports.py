"""A summary table as CSV, Markdown or LaTeX, ready to paste into a report.

Every format says a number in the unit its header gives (`Column.heading`: the title with its kind's unit,
"Test acc (%)"; a page shows the title alone and puts the unit in each cell, format.js): accuracies are
percentages everywhere, rounded to two decimals (0.01 %, one image in 10,000) — the JSON answers keep
fractions. Markdown and LaTeX show what a report shows: seconds with one decimal, speeds as whole
numbers; CSV keeps the other numbers exact (a spreadsheet formats them). A value that is a Spread (seeds
of one variant) shows as "mean ± std" when it has more than one value; in CSV a spread column is two
columns, the mean and "<title> std" (empty for a single value: one run has no spread; the count is the
caller's own column).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from trainboard.schemas import Spread

Format = Literal["csv", "md", "tex"]
MEDIA_TYPES: dict[str, str] = {"csv": "text/csv", "md": "text/markdown", "tex": "application/x-tex"}


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    kind: Literal["text", "percent", "seconds", "integer", "rate", "flag"] = "text"
    spread: bool = False  # values are Spreads (or None)

    @property
    def heading(self) -> str:
        """The title a file's header row gives: with the unit its bare numbers are in ("Test acc (%)")."""
        unit = UNITS.get(self.kind)
        return f"{self.title} ({unit})" if unit else self.title


# The unit of a kind's numbers: a file says it once in the header; a page's table says it in every cell.
UNITS = {"percent": "%", "seconds": "s"}


PERCENT_DECIMALS = 2


def percent(fraction: float) -> float:
    """A fraction (0.97125) as the percentage every export and page shows (97.13): the one rounding of
    accuracies. Half away from zero on the float's exact value, as the browser's toFixed rounds
    (frontend/static/format.js), so a page drawn by the server and one updated live agree."""
    exact = Decimal(100 * fraction)
    return float(exact.quantize(Decimal(1).scaleb(-PERCENT_DECIMALS), rounding=ROUND_HALF_UP))


def csv_value(value: Any, kind: str) -> Any:
    """A value as its CSV cell: accuracies in percent (the header's unit), other values as they are; empty
    if missing."""
    if value is None:
        return ""
    return percent(value) if kind == "percent" else value


def format_value(value: Any, kind: str) -> str:
    if isinstance(value, Spread):
        if value.std is None:  # one value: no spread to show
            return format_value(value.mean, kind)
        # A mean of whole numbers (epochs) need not be whole: one decimal, like seconds.
        kind = "seconds" if kind == "integer" else kind
        return f"{format_value(value.mean, kind)} ± {format_value(value.std, kind)}"
    if value is None:
        return "–"
    if kind == "percent":
        return f"{percent(value):.{PERCENT_DECIMALS}f}"
    if kind == "seconds":
        return f"{value:.1f}"
    if kind in ("integer", "rate"):
        return f"{value:,.0f}" if kind == "rate" else str(int(value))
    if kind == "flag":
        return "yes" if value else "no"
    return str(value)


def render(rows: Sequence[dict[str, Any]], columns: Sequence[Column], fmt: Format, caption: str = "") -> str:
    if fmt == "csv":
        return _csv(rows, columns)
    if fmt == "md":
        return _markdown(rows, columns, caption)
    return _latex(rows, columns, caption)


def _csv(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [title for c in columns for title in ((c.heading, f"{c.heading} std") if c.spread else (c.heading,))]
    )
    for row in rows:
        cells: list[Any] = []
        for c in columns:
            value = row.get(c.key)
            if c.spread:
                cells += ["", ""] if value is None else [csv_value(value.mean, c.kind), csv_value(value.std, c.kind)]
            else:
                cells.append(csv_value(value, c.kind))
        writer.writerow(cells)
    return out.getvalue()


def _markdown(rows: Sequence[dict[str, Any]], columns: Sequence[Column], caption: str) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    align = ["---" if c.kind in ("text", "flag") else "---:" for c in columns]
    lines = [f"| {' | '.join(cell(c.heading) for c in columns)} |", f"| {' | '.join(align)} |"]
    for row in rows:
        lines.append(f"| {' | '.join(cell(format_value(row.get(c.key), c.kind)) for c in columns)} |")
    return (f"{caption}\n\n" if caption else "") + "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex(rows: Sequence[dict[str, Any]], columns: Sequence[Column], caption: str) -> str:
    spec = "".join("l" if c.kind in ("text", "flag") else "r" for c in columns)
    lines = [
        r"\begin{table}[ht]",
        r"\centering",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\hline",
        " & ".join(latex_escape(c.heading) for c in columns) + r" \\",
        r"\hline",
    ]
    for row in rows:
        lines.append(" & ".join(latex_escape(format_value(row.get(c.key), c.kind)) for c in columns) + r" \\")
    lines += [r"\hline", r"\end{tabular}"]
    if caption:
        lines.append(rf"\caption{{{latex_escape(caption)}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"
