"""Summary exports round-trip their numbers; LaTeX escapes what it must."""

from __future__ import annotations

import csv
import io
import re

from backend.services import exports
from trainboard.schemas import Spread

COLUMNS = [
    exports.Column("label", "Run"),
    exports.Column("acc", "Test acc", "percent"),
    exports.Column("seconds", "Time", "seconds"),
    exports.Column("rate", "Images/s", "rate"),
    exports.Column("stopped", "Early stop", "flag"),
]
ROWS = [
    {"label": "lr_0.1 & 50% | wd", "acc": 0.97125, "seconds": 128.88, "rate": 41234.7, "stopped": False},
    {"label": "cnn_k5", "acc": 0.9, "seconds": None, "rate": 998.0, "stopped": True},
]


def test_csv_gives_accuracies_in_percent_as_the_header_says_and_other_numbers_exact() -> None:
    parsed = list(csv.reader(io.StringIO(exports.render(ROWS, COLUMNS, "csv"))))
    assert parsed[0] == ["Run", "Test acc (%)", "Time (s)", "Images/s", "Early stop"]
    assert parsed[1][0] == "lr_0.1 & 50% | wd"
    assert (parsed[1][1], parsed[2][1]) == ("97.13", "90.0")  # percent, two decimals (rounded as the browser does)
    assert exports.csv_value(0.29, "percent") == 29.0  # not 100 * 0.29 = 28.999999999999996
    assert float(parsed[1][2]) == 128.88 and float(parsed[1][3]) == 41234.7
    assert parsed[2][2] == ""  # missing, not zero


def test_every_format_shows_the_same_percentage() -> None:
    """One rounding of accuracies for CSV, Markdown and LaTeX: a report pasted from one matches the others."""
    rows = [{"label": "x", "acc": 0.27294, "seconds": 1.0, "rate": 1.0, "stopped": False}]
    shown = {
        float(list(csv.reader(io.StringIO(exports.render(rows, COLUMNS, "csv"))))[1][1]),
        float(exports.render(rows, COLUMNS, "md").splitlines()[2].split("|")[2]),
        float(exports.render(rows, COLUMNS, "tex").splitlines()[6].split("&")[1]),
    }
    assert shown == {27.29}


def test_markdown_round_trips_the_shown_numbers() -> None:
    text = exports.render(ROWS, COLUMNS, "md", caption="Best epoch.")
    lines = text.splitlines()
    assert lines[0] == "Best epoch."
    _header, rule, first, second = lines[2:6]
    assert rule == "| --- | ---: | ---: | ---: | --- |"
    cells = [c.strip() for c in re.split(r"(?<!\\)\|", first)[1:-1]]
    assert cells[0] == "lr_0.1 & 50% \\| wd"
    assert float(cells[1]) == exports.percent(0.97125) == 97.13 and float(cells[2]) == 128.9
    assert int(cells[3].replace(",", "")) == 41235 and cells[4] == "no"
    assert second == "| cnn_k5 | 90.00 | – | 998 | yes |"


def test_latex_escapes_and_round_trips() -> None:
    text = exports.render(ROWS, COLUMNS, "tex", caption="acc_best 100%")
    assert r"lr\_0.1 \& 50\% | wd & 97.13 & 128.9 & 41,235 & no \\" in text
    assert r"\caption{acc\_best 100\%}" in text
    assert r"\begin{tabular}{lrrrl}" in text
    assert exports.latex_escape("a_b%c&d#e$f{g}h~i^j\\k") == (
        r"a\_b\%c\&d\#e\$f\{g\}h\textasciitilde{}i\textasciicircum{}j\textbackslash{}k"
    )


def test_spread_values_show_mean_and_std_and_split_into_two_csv_columns() -> None:
    columns = [
        exports.Column("label", "Version"),
        exports.Column("acc", "Acc", "percent", spread=True),
        exports.Column("epochs", "Epochs", "integer", spread=True),
    ]
    rows = [
        {"label": "a_b", "acc": Spread(mean=0.9, std=0.0125, n=3), "epochs": Spread(mean=2.5, std=0.5, n=3)},
        {"label": "c", "acc": Spread(mean=0.8, std=None, n=1), "epochs": Spread(mean=2, std=None, n=1)},
        {"label": "none"},
    ]
    assert exports.render(rows, columns, "csv").splitlines() == [
        "Version,Acc (%),Acc (%) std,Epochs,Epochs std",
        "a_b,90.0,1.25,2.5,0.5",  # mean and std in percent, like the header
        "c,80.0,,2.0,",  # one value: no std (empty, not 0)
        "none,,,,",
    ]
    md = exports.render(rows, columns, "md")
    assert "| a_b | 90.00 ± 1.25 | 2.5 ± 0.5 |" in md and "| c | 80.00 | 2 |" in md and "| none | – | – |" in md
    assert r"a\_b & 90.00 ± 1.25 & 2.5 ± 0.5 \\" in exports.render(rows, columns, "tex")
