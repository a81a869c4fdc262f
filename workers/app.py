"""The Celery app: JSON only, late acknowledgement (but for submits, see
`workers.tasks.submit`), a thread pool, the outbox relay and, with callbacks off, the
poller (`workers.poller`).

Task names and queues are stable strings defined here; other processes send tasks by
name through the broker and never import the task code.

Workers run Celery's thread pool: a submit or a collect spends nearly all of its time
waiting on S3, the provider or Redis, so one process with enough threads keeps every
task moving without a process per waiting task. Thread pools enforce no time limits;
every wait in a task has its own timeout instead (HTTP, S3 and Redis clients), far
below the broker's visibility timeout.
"""

from __future__ import annotations

from celery import Celery

from pipeline.settings import Settings
from workers.metrics import MetricsStep

TASK_SUBMIT = "fillpipe.submit"
TASK_COLLECT = "fillpipe.collect"
TASK_RECONCILE = "fillpipe.reconcile"
TASK_DISPATCH = "fillpipe.dispatch"
# An outgoing notification's first attempt (`pipeline.notify`); on the collect queue,
# which every worker layout consumes.
TASK_NOTIFY = "fillpipe.notify"
QUEUE_SUBMIT = "submit"
QUEUE_COLLECT = "collect"
QUEUE_MAINTENANCE = "maintenance"
TASK_ROUTES = {
    TASK_SUBMIT: {"queue": QUEUE_SUBMIT},
    TASK_COLLECT: {"queue": QUEUE_COLLECT},
    TASK_RECONCILE: {"queue": QUEUE_MAINTENANCE},
    TASK_DISPATCH: {"queue": QUEUE_SUBMIT},
    TASK_NOTIFY: {"queue": QUEUE_COLLECT},
}
# A message not acknowledged within this long is delivered again (Redis transport).
VISIBILITY_TIMEOUT_S = 3600
# Ride out a broker restart (up to ~30 s) when sending, as the ledger does.
PUBLISH_RETRY_POLICY = {
    "max_retries": 40,
    "interval_start": 0.05,
    "interval_step": 0.25,
    "interval_max": 1.0,
}


def create_celery_app(settings: Settings) -> Celery:
    """The configured Celery app for `settings` (broker = the ledger's Redis)."""
    from workers.context import StopSignal
    from workers.poller import PollerStep
    from workers.relay import RelayStep

    app = Celery("fillpipe", broker=settings.redis_url, include=["workers.tasks"])
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_pool="threads",
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
        broker_connection_retry_on_startup=True,
        task_publish_retry_policy=PUBLISH_RETRY_POLICY,
        worker_hijack_root_logger=False,
        # Task events only when asked (Flower asks every 5 s), none on publishing.
        worker_send_task_events=False,
        task_send_sent_event=False,
        task_default_queue=QUEUE_SUBMIT,
        task_routes=TASK_ROUTES,
        beat_schedule={
            "reconcile": {
                "task": TASK_RECONCILE,
                "schedule": settings.deadlines.reconcile_every_s,
                "options": {"expires": settings.deadlines.reconcile_every_s},
            },
        },
    )
    app.steps["worker"].update({RelayStep, PollerStep, StopSignal, MetricsStep})
    return app
