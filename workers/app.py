"""The Celery app: JSON only, late acks (but for submits, see `workers.tasks.submit`),
one message at a time per worker process.

Task names and queues are stable strings defined here; other processes (the receiver,
the CLI) send tasks by name through the broker and never import the task code.
"""

from __future__ import annotations

from celery import Celery

from pipeline.settings import Settings

TASK_SUBMIT = "fillpipe.submit"
TASK_COLLECT = "fillpipe.collect"
TASK_RECONCILE = "fillpipe.reconcile"
TASK_DISPATCH = "fillpipe.dispatch"
QUEUE_SUBMIT = "submit"
QUEUE_COLLECT = "collect"
QUEUE_MAINTENANCE = "maintenance"
# A message not acknowledged within this long is delivered again (Redis transport).
VISIBILITY_TIMEOUT_S = 3600
# Hard limit per task, far below the visibility timeout so no task is redelivered
# while it still runs.
TASK_TIME_LIMIT_S = 300
TASK_SOFT_TIME_LIMIT_S = 240


def create_celery_app(settings: Settings) -> Celery:
    """The configured Celery app for `settings` (broker = the ledger's Redis)."""
    app = Celery("fillpipe", broker=settings.redis_url, include=["workers.tasks"])
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=TASK_TIME_LIMIT_S,
        task_soft_time_limit=TASK_SOFT_TIME_LIMIT_S,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
        broker_connection_retry_on_startup=True,
        # Ride out a broker restart (up to ~30 s) when sending, as the ledger does.
        task_publish_retry_policy={
            "max_retries": 40,
            "interval_start": 0.05,
            "interval_step": 0.25,
            "interval_max": 1.0,
        },
        worker_hijack_root_logger=False,
        # No task events unless asked: Flower asks every 5 s (`enable_events`), so it still
        # sees every task, and without it the three events a task sends cost the workers
        # ~4 ms of CPU per job (bench_makespan: 25.5 -> 21.0 ms). Publishers send no
        # "task-sent" event, which would double the cost of every enqueue.
        worker_send_task_events=False,
        task_send_sent_event=False,
        task_default_queue=QUEUE_SUBMIT,
        task_routes={
            TASK_SUBMIT: {"queue": QUEUE_SUBMIT},
            TASK_COLLECT: {"queue": QUEUE_COLLECT},
            TASK_RECONCILE: {"queue": QUEUE_MAINTENANCE},
            TASK_DISPATCH: {"queue": QUEUE_SUBMIT},
        },
        beat_schedule={
            "reconcile": {
                "task": TASK_RECONCILE,
                "schedule": settings.deadlines.reconcile_every_s,
                "options": {"expires": settings.deadlines.reconcile_every_s},
            },
        },
    )
    return app


def request_dispatch(app: Celery, *, countdown_s: float | None = None) -> None:
    """Ask a worker to fill the free provider slots (now, or after `countdown_s`)."""
    app.send_task(TASK_DISPATCH, countdown=countdown_s)
