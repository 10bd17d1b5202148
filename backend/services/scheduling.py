"""Which queued runs go to the broker now: as many as the live workers have free slots, by priority, then
round-robin across studies. Pure: the dispatch round (services/dispatch.py) reads the rows, this decides.

- A *bucket* is where a run waits: its queue and whether it asks for a GPU. A worker serves the buckets of
  the queues it listens on, and their GPU variants when it has a GPU.
- Capacity: each live worker's slots, less the runs it trains (the database knows which worker claimed a
  run), less the runs sent and not yet claimed: for those only the bucket is known (the broker chooses who
  takes a message), so they are charged to the workers that could take them, most constrained bucket first,
  each to the serving worker that serves the fewest buckets. Runs of a draining or gone worker hold none of
  the taking workers' slots.
- Order: priority first (higher first); within a priority, round-robin across studies, the study served
  longest ago first (one short run does not wait behind a 200-run study's queue), then the oldest run.
  Runs outside any study share one group.
- A run whose bucket no free worker serves is skipped; runs behind it in other buckets still go.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

Bucket = tuple[str, bool]  # (queue, asks for a GPU)
Group = tuple[str, int | None]  # (queue, study id): the runs that share a fair share
Served = frozenset[Bucket]  # the buckets live workers take runs from


@dataclass(frozen=True)
class WorkerCapacity:
    name: str
    queues: tuple[str, ...]
    gpu: bool
    slots: int

    def serves(self) -> set[Bucket]:
        return {(queue, gpu) for queue in self.queues for gpu in ((False, True) if self.gpu else (False,))}


@dataclass(frozen=True)
class Candidate:
    run_id: int
    queue: str
    gpu: bool
    priority: int
    study_id: int | None

    @property
    def bucket(self) -> Bucket:
        return (self.queue, self.gpu)

    @property
    def group(self) -> Group:
        return (self.queue, self.study_id)


def served(workers: list[WorkerCapacity]) -> Served:
    """The buckets at least one of `workers` takes runs from."""
    return frozenset(bucket for worker in workers for bucket in worker.serves())


def waiting_reason(queue: str, gpu: bool, served: Served) -> str | None:
    """Why a queued run in this bucket waits for nobody (None: some live worker takes runs from it)."""
    if (queue, gpu) in served:
        return None
    if gpu and any(q == queue for q, _ in served):
        return f"no live worker with a GPU listens on queue {queue}"
    return f"no live worker listens on queue {queue}" + (" (with a GPU)" if gpu else "")


def _take(free: dict[str, int], workers: list[WorkerCapacity], serves: dict[str, set[Bucket]], bucket: Bucket) -> bool:
    """Charge one slot of `bucket` to the serving worker with room that serves the fewest buckets."""
    able = [w for w in workers if free[w.name] > 0 and bucket in serves[w.name]]
    if not able:
        return False
    chosen = min(able, key=lambda w: (len(serves[w.name]), -free[w.name], w.name))
    free[chosen.name] -= 1
    return True


def free_slots(
    workers: list[WorkerCapacity], running_on: Counter[str], unattributed: Counter[Bucket]
) -> dict[str, int]:
    """Each worker's free slots: its slots, less the runs it trains (`running_on`, by worker name), less its
    share of the runs that hold a slot of some worker not known which (`unattributed`: sent and not yet
    claimed, per bucket), charged most constrained bucket first."""
    free = {w.name: max(0, w.slots - running_on[w.name]) for w in workers}
    serves = {w.name: w.serves() for w in workers}
    coverage = Counter(bucket for w in workers for bucket in serves[w.name])
    for bucket in sorted(unattributed, key=lambda b: (coverage[b], b)):
        for _ in range(unattributed[bucket]):
            if not _take(free, workers, serves, bucket):
                break
    return free


def fair_order(candidates: list[Candidate], last_sent: Mapping[Group, datetime]) -> list[Candidate]:
    """Priority first (higher first). Within a priority, round-robin across groups: each group's first run,
    then each group's second, ...; in each turn the group served longest ago goes first (a group never
    served before it all), so turns carry over from one round to the next. Within a group, the oldest run."""
    never = datetime.min.replace(tzinfo=UTC)

    def served_at(group: Group) -> datetime:
        when = last_sent.get(group)
        return never if when is None else when if when.tzinfo else when.replace(tzinfo=UTC)

    ahead: Counter[tuple[Group, int]] = Counter()
    keyed = []
    for candidate in sorted(candidates, key=lambda c: (-c.priority, c.run_id)):
        place = (candidate.group, candidate.priority)
        turn = ahead[place]
        ahead[place] += 1
        keyed.append(((-candidate.priority, turn, served_at(candidate.group), candidate.run_id), candidate))
    return [candidate for _, candidate in sorted(keyed, key=lambda pair: pair[0])]


def plan(
    workers: list[WorkerCapacity],
    free: dict[str, int],
    last_sent: Mapping[Group, datetime],
    candidates: list[Candidate],
) -> list[Candidate]:
    """The candidates to send now, in the order to send them: as many as fit the workers' `free` slots (from
    `free_slots`), in fair order. `last_sent`: when each (queue, study) group last had a run sent."""
    free = dict(free)
    serves = {w.name: w.serves() for w in workers}
    room = sum(free.values())
    chosen = []
    for candidate in fair_order(candidates, last_sent):
        if room == 0:
            break
        if _take(free, workers, serves, candidate.bucket):
            chosen.append(candidate)
            room -= 1
    return chosen
