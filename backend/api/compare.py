"""Compare runs: overlaid curves, the config fields that differ, and the summary table a report needs."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse
from pydantic import AfterValidator

from backend.deps import SessionDep, require_user
from backend.responses import NOT_FOUND, USER
from backend.services import comparison, exports
from backend.services.comparison import MAX_COMPARED_RUNS
from trainboard.protocol import MAX_ID
from trainboard.schemas import Comparison, SummaryMode

router = APIRouter(prefix="/api/compare", tags=["compare"], dependencies=[Depends(require_user)], responses=USER)


def _run_ids(text: str) -> str:
    if any(int(part) > MAX_ID for part in text.split(",")):
        raise ValueError(f"run ids are at most {MAX_ID}")
    return text


RunIds = Annotated[
    str,
    Query(
        pattern=rf"^\d{{1,10}}(,\d{{1,10}}){{0,{MAX_COMPARED_RUNS - 1}}}$",
        examples=["1,2,3"],
        description=f"Run ids, comma-separated, at most {MAX_COMPARED_RUNS}",
    ),
    AfterValidator(_run_ids),
]
Mode = Annotated[SummaryMode, Query(description="Which epoch a run's accuracy is taken from")]


After = Annotated[
    str | None,
    Query(
        pattern=rf"^\d{{1,10}}:\d{{1,6}}(,\d{{1,10}}:\d{{1,6}}){{0,{MAX_COMPARED_RUNS - 1}}}$",
        examples=["1:3,2:5"],
        description="RUN:EPOCH pairs: the caller has those runs' curves up to that epoch, so their `series` carry "
        "only the points after it (a downsampled curve comes whole; `series[].after` says which)",
    ),
]


def _after(text: str | None) -> dict[int, int]:
    if not text:
        return {}
    return {int(run): int(epoch) for run, epoch in (part.split(":") for part in text.split(","))}


def _ids(run_ids: str) -> list[int]:
    return list(dict.fromkeys(int(i) for i in run_ids.split(",")))  # de-duplicated, in order


@router.get("", response_model=Comparison, responses=NOT_FOUND)
def read_comparison(
    session: SessionDep,
    runs: RunIds,
    summary: Mode = "best",
    max_points: Annotated[int, Query(ge=10, le=10_000, description="Points per curve at most")] = 500,
    x: Annotated[Literal["epoch", "seconds"], Query(description="The curves' x axis")] = "epoch",
    all_fields: Annotated[
        bool, Query(description="`diff` lists every config field, not only those that differ")
    ] = False,
    after: After = None,
) -> Comparison:
    """Everything the compare page shows for up to 50 runs, in one request; with `after`, the curves' new
    points only, for a page that follows the runs live."""
    return comparison.compare(session, _ids(runs), summary, max_points, x, all_fields, _after(after))


@router.get(
    "/summary",
    response_class=PlainTextResponse,
    responses=NOT_FOUND | {200: {"content": {t: {} for t in exports.MEDIA_TYPES.values()}}},
)
def export_summary(
    session: SessionDep,
    runs: RunIds,
    summary: Mode = "best",
    format: Annotated[exports.Format, Query(description="csv, md (Markdown) or tex (LaTeX)")] = "csv",
) -> PlainTextResponse:
    """The summary table as a file to download or paste."""
    text = comparison.summary_file(session, _ids(runs), summary, format)
    return PlainTextResponse(
        text,
        media_type=exports.MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="trainboard-summary.{format}"'},
    )
