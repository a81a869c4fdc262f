"""Workers send task events only once asked, as Flower asks every few seconds."""

import threading
import time

import pytest

from pipeline.runtime import Runtime
from workers.app import TASK_DISPATCH, create_celery_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

WAIT_S = 20.0
RESEND_EVERY_S = 1.0


def test_a_worker_asked_for_events_reports_its_tasks(stack_rt: Runtime) -> None:
    app = create_celery_app(stack_rt.settings)
    seen: list[dict] = []
    with app.connection_for_read() as connection:
        receiver = app.events.Receiver(connection, handlers={"*": seen.append})
        listening = threading.Thread(target=receiver.capture, kwargs={"wakeup": False})
        listening.start()
        try:
            deadline = time.monotonic() + WAIT_S
            while time.monotonic() < deadline and not _reported(seen, TASK_DISPATCH):
                app.control.enable_events()  # what Flower does, every 5 s
                app.send_task(TASK_DISPATCH)  # a task that finds nothing to dispatch
                time.sleep(RESEND_EVERY_S)
        finally:
            receiver.should_stop = True
            app.control.disable_events()
            listening.join(timeout=10)
    app.close()

    assert _reported(seen, TASK_DISPATCH)


def _reported(events: list[dict], name: str) -> bool:
    """True once a task named `name` was reported received and then succeeded."""
    received = {
        event["uuid"]
        for event in list(events)
        if event.get("type") == "task-received" and event.get("name") == name
    }
    return any(
        event.get("type") == "task-succeeded" and event.get("uuid") in received
        for event in list(events)
    )
