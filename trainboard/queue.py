"""The Celery app both sides share: the backend sends "run id X is ready", a worker trains it.

Only the run id travels; the database is the source of truth. Settings follow DESIGN.md: JSON
only, acks late, prefetch 1, a fresh process per run (CUDA memory back after every run), and a
broker visibility timeout longer than any run, since the API's atomic claim — not redelivery —
prevents double execution.
"""

from __future__ import annotations

from celery import Celery

TRAIN_TASK = "trainboard.train_run"

# A week: longer than any run, so Redis does not hand a long run's message to a second worker.
VISIBILITY_TIMEOUT_S = 7 * 24 * 3600


def make_celery(broker_url: str, queue: str) -> Celery:
    app = Celery("trainboard", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=False,  # a killed run is recovered by the API's lost-run check, not redelivered
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        worker_max_tasks_per_child=1,
        task_default_queue=queue,
        broker_connection_retry_on_startup=True,
        broker_transport_options=_transport_options(broker_url),
        worker_send_task_events=False,
        # How long the worker waits, after a run's process died without a word, before it calls the job lost
        # (and worker/run_state.py reports the signal): Celery's 10 s would let the lost-run check speak first.
        worker_lost_wait=0.5,
    )
    return app


# How often a worker on the SQLite broker looks for a new run id. kombu polls that table once a second by
# default, which put up to a second between one run's end and the next one's start; a query of an empty
# table every 100 ms costs nothing next to that. (Redis pushes: BRPOP waits, nothing polls.)
SQLITE_POLL_SECONDS = 0.1


def _transport_options(broker_url: str) -> dict[str, object]:
    if broker_url.startswith(("redis://", "rediss://", "redis+socket://")):
        return {"visibility_timeout": VISIBILITY_TIMEOUT_S}
    # kombu's sqlalchemy transport hands its options to create_engine(), so the polling interval cannot
    # travel in them (create_engine would refuse it): it is the transport's class setting instead. It
    # re-delivers nothing by time, so no visibility timeout is needed.
    if broker_url.startswith("sqla+"):
        from kombu.transport import sqlalchemy

        sqlalchemy.Transport.polling_interval = SQLITE_POLL_SECONDS
    return {}
