"""The dispatch round's choice (backend/services/scheduling.py): only as many runs as free slots, priority first,
then round-robin across studies, GPU runs only to GPU workers, CPU runs to CPU workers first."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from backend.services.scheduling import (
    Candidate,
    WorkerCapacity,
    fair_order,
    free_slots,
    plan,
    served,
    waiting_reason,
)

CPU = WorkerCapacity("cpu@a", ("default",), gpu=False, slots=2)
GPU = WorkerCapacity("gpu@b", ("default",), gpu=True, slots=1)


def run(
    run_id: int, study: int | None = None, priority: int = 0, queue: str = "default", gpu: bool = False
) -> Candidate:
    return Candidate(run_id, queue, gpu, priority, study)


def chosen(
    workers: list[WorkerCapacity],
    candidates: list[Candidate],
    busy: Counter[tuple[str, bool]] | None = None,
    running_on: Counter[str] | None = None,
) -> list[int]:
    free = free_slots(workers, running_on or Counter(), busy or Counter())
    return [c.run_id for c in plan(workers, free, {}, candidates)]


def test_no_more_runs_than_free_slots() -> None:
    assert chosen([CPU], [run(i) for i in range(1, 6)]) == [1, 2]
    assert chosen([CPU], [run(i) for i in range(1, 6)], Counter({("default", False): 1})) == [1]
    assert chosen([CPU], [run(1)], Counter({("default", False): 2})) == []
    assert chosen([], [run(1)]) == []


def test_priority_first_then_age() -> None:
    assert chosen([CPU], [run(1), run(2), run(3, priority=5), run(4, priority=-1)]) == [3, 1]


def test_round_robin_across_studies_and_lone_runs() -> None:
    big = [run(i, study=7) for i in range(1, 201)]  # a 200-run study queued first
    lone = run(500)  # one short run queued after it
    other = [run(600 + i, study=8) for i in range(3)]
    order = [c.run_id for c in fair_order([*big, lone, *other], {})]
    assert order[:3] == [1, 500, 600]  # each group's oldest, oldest group first
    assert order[3:7] == [2, 601, 3, 602]  # the lone run went: the two studies take turns
    assert order[7:] == list(range(4, 201))


def test_turns_carry_over_between_rounds() -> None:
    """One slot: each round sends one run; the group served longest ago (or never) goes next."""
    start = datetime(2026, 12, 4, tzinfo=UTC)
    last_sent = {("default", None): start}  # a lone run went a moment ago; the study never had one
    assert [c.run_id for c in fair_order([run(2, study=7), run(3, study=7), run(9)], last_sent)][:2] == [2, 9]
    last_sent[("default", 7)] = start + timedelta(seconds=1)  # then the study's first went
    assert fair_order([run(3, study=7), run(9)], last_sent)[0].run_id == 9


def test_a_gpu_run_goes_only_to_a_gpu_worker_and_cpu_runs_fill_cpu_workers_first() -> None:
    assert chosen([CPU], [run(1, gpu=True), run(2)]) == [2]  # the GPU run is skipped, the next one goes
    assert chosen([CPU, GPU], [run(1), run(2), run(3, gpu=True)]) == [1, 2, 3]  # CPU runs left the GPU free
    # The GPU worker busy with a GPU run: a CPU run still fits the CPU worker, a second GPU run does not.
    assert chosen([CPU, GPU], [run(4, gpu=True), run(5)], Counter({("default", True): 1})) == [5]


def test_a_workers_own_runs_take_its_slots_and_no_other_workers() -> None:
    assert chosen([CPU], [run(1), run(2), run(3)], running_on=Counter({"cpu@a": 1})) == [1]
    assert chosen([CPU, GPU], [run(2, gpu=True), run(1)], running_on=Counter({"gpu@b": 1})) == [1]
    # A draining worker is not among the taking ones: the runs it finishes hold none of their slots.
    assert chosen([CPU], [run(1), run(2)], running_on=Counter({"draining@c": 2})) == [1, 2]


def test_named_queues_go_only_to_their_workers() -> None:
    a = WorkerCapacity("a@x", ("a",), gpu=False, slots=1)
    b = WorkerCapacity("b@x", ("b",), gpu=False, slots=1)
    assert chosen([a], [run(1, queue="b"), run(2, queue="a")]) == [2]
    assert chosen([a, b], [run(1, queue="b"), run(2, queue="b")]) == [1]


def test_what_waits_for_nobody_says_why() -> None:
    everywhere = served([CPU, GPU])
    assert waiting_reason("default", True, everywhere) is None
    assert waiting_reason("default", True, served([CPU])) == "no live worker with a GPU listens on queue default"
    assert waiting_reason("a100", False, everywhere) == "no live worker listens on queue a100"
    assert waiting_reason("a100", True, everywhere) == "no live worker listens on queue a100 (with a GPU)"


def test_broker_queue_names_never_meet() -> None:
    from trainboard.placement import broker_queue, listened_queues

    names = {
        broker_queue(deployment, queue, gpu)
        for deployment in ("trainboard", "trainboard.x")
        for queue in ("default", "x", "cuda")
        for gpu in (False, True)
    }
    assert len(names) == 12  # a queue named cuda, a deployment with a dot: all distinct
    assert listened_queues("tb", ["default", "a100"], gpu=True) == ["tb", "tb@cuda", "tb:a100", "tb:a100@cuda"]
    assert listened_queues("tb", ["default"], gpu=False) == ["tb"]
