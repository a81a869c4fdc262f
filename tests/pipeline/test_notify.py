"""Outgoing notifications against a real Valkey, a real S3 server and a real HTTP
receiver: queued with the state change that ends a batch (or a rule's job), signed per
Standard Webhooks, retried on the schedule with the same webhook id, refused without a
secret."""

import dataclasses
import itertools
import json
import socket
import textwrap

import pytest
from click.testing import CliRunner

from fillpipe.cli import main
from pipeline.batches import create_batch, default_output_uri
from pipeline.collect import collect_job
from pipeline.errors import ConfigError, InputError, RulesInvalid
from pipeline.ledger.triggers import EventMark
from pipeline.models import EditParams, JobRef, JobSpec
from pipeline.notify import RETRY_SCHEDULE_S, RetryReport, deliver, retry_due
from pipeline.notify_target import check_target
from pipeline.reconcile import sweep
from pipeline.reports import job_ended
from pipeline.secret import Secret
from pipeline.settings import Settings
from pipeline.states import JobState
from pipeline.storage import S3Uri
from pipeline.submit import submit_job
from pipeline.triggers.events import ObjectEvent
from pipeline.triggers.intake import TriggerIntake, check_notify
from pipeline.triggers.rules import parse_rules
from tests.notify_receiver import SECRET, NotifyReceiver
from tests.pipeline.conftest import take_outbox
from tests.pipeline.fakes import PROVIDER_URL, png

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

_ids = itertools.count(1)
RULE = "retouch"


@pytest.fixture
def settings(settings):
    """The pipeline's test settings, with a notify secret."""
    return dataclasses.replace(settings, notify_secret=Secret(SECRET))


@pytest.fixture
def receiver():
    with NotifyReceiver().running() as running:
        yield running


def job_spec(rt, batch_id, job_id, *, image=None, origin=None):
    """A job whose inputs are in S3 (a garbage image ends it invalid_input)."""
    prefix = f"s3://{rt.settings.bucket}/inputs/{batch_id}/{job_id}"
    rt.storage.write(S3Uri.parse(f"{prefix}.png"), image or png(), content_type="image/png")
    rt.storage.write(S3Uri.parse(f"{prefix}-m.png"), png(mode="L"), content_type="image/png")
    return JobSpec(
        ref=JobRef(batch_id, job_id),
        image_uri=f"{prefix}.png",
        mask_uri=f"{prefix}-m.png",
        output_uri=default_output_uri(rt, batch_id, job_id, "png"),
        params=EditParams(prompt="a red mug", finetune_id="ft-1", output_format="png"),
        origin=origin or {},
    )


def notifying_batch(rt, url, images):
    """A manifest batch of one job per image (None: a good one) that notifies `url`."""
    batch_id = f"n{next(_ids)}-{id(rt):x}"
    specs = [job_spec(rt, batch_id, f"job-{n}", image=image) for n, image in enumerate(images)]
    create_batch(rt, batch_id, specs, source="/data/mugs.jsonl", notify_url=url)
    return [spec.ref for spec in specs]


def run_to_end(rt, ref):
    """Submit and collect the job as the workers would; its final state."""
    rt.ledger.slots.dispatch()
    record = rt.ledger.jobs.get(ref)
    assert record.state is JobState.DISPATCHED, record
    state = submit_job(rt, ref, record.attempt)
    if state is JobState.AWAITING_RESULT:
        state = collect_job(rt, ref, record.attempt)
    return state


def deliver_queued(rt):
    """Play the relay and the notify task: deliver each queued notification."""
    return [
        deliver(rt, ref.batch_id, ref.job_id, number) for ref, number in take_outbox(rt, "notify")
    ]


def finished_batch(rt, url):
    refs = notifying_batch(rt, url, [None, b"garbage"])
    assert [run_to_end(rt, ref) for ref in refs] == [JobState.STORED, JobState.INVALID_INPUT]
    return refs[0].batch_id


def test_a_finished_batch_sends_one_signed_batch_finished(rt, receiver):
    refs = notifying_batch(rt, receiver.url, [None, b"garbage"])
    assert run_to_end(rt, refs[0]) is JobState.STORED
    assert take_outbox(rt, "notify") == []  # one job to go: nothing queued

    assert run_to_end(rt, refs[1]) is JobState.INVALID_INPUT
    assert deliver_queued(rt) == [True]

    batch_id = refs[0].batch_id
    [received] = receiver.received
    assert received.webhook_id == f"msg_{batch_id}"
    assert received.path == "/hooks/fillpipe?token=t0ken"
    assert received.headers["content-type"] == "application/json"
    event = received.verified()
    assert event["type"] == "batch.finished"
    assert event["timestamp"] == "2030-03-17T17:46:40Z"  # the test clock's moment
    results = f"s3://{rt.settings.bucket}/outputs/{batch_id}/results.jsonl"
    assert event["data"] == {
        "batch": batch_id,
        "counts": {
            "stored": 1,
            "failed": 0,
            "invalid_input": 1,
            "cancelled": 0,
            "skipped_budget": 0,
        },
        "total": 2,
        "cost_credits": 4.5,
        "results": results,
        "source": "/data/mugs.jsonl",
    }
    # The results manifest it names is complete when it arrives.
    rows = rt.storage.fetch(S3Uri.parse(results)).body.decode().splitlines()
    assert [json.loads(row)["state"] for row in rows] == ["stored", "invalid_input"]


def test_a_notifying_batch_has_its_results_written_once_by_its_notification(rt, receiver):
    [ref] = notifying_batch(rt, receiver.url, [None])
    assert run_to_end(rt, ref) is JobState.STORED
    results = S3Uri.parse(f"s3://{rt.settings.bucket}/outputs/{ref.batch_id}/results.jsonl")

    assert job_ended(rt, ref.batch_id) is None  # as the collect calls it
    assert rt.storage.head(results) is None
    assert deliver_queued(rt) == [True]
    assert rt.storage.head(results) is not None


def test_a_notification_published_twice_is_sent_once(rt, receiver):
    batch_id = finished_batch(rt, receiver.url)
    [(ref, number)] = take_outbox(rt, "notify")
    assert (ref, number) == (JobRef(batch_id, ""), 1)
    assert deliver(rt, batch_id, "", number) is True
    assert deliver(rt, batch_id, "", number) is None  # the relay published it again
    assert len(receiver.received) == 1


def test_a_batch_that_finishes_again_after_a_retry_notifies_again(rt, receiver, fake):
    fake.submit_status = 422
    [ref] = notifying_batch(rt, receiver.url, [None])
    assert run_to_end(rt, ref) is JobState.FAILED
    assert deliver_queued(rt) == [True]
    fake.submit_status = 200
    assert rt.ledger.batches.retry_failed(ref.batch_id) == 1
    assert take_outbox(rt, "notify") == []  # unfinished again

    assert run_to_end(rt, ref) is JobState.STORED
    assert deliver_queued(rt) == [True]

    first, second = receiver.received
    assert (first.webhook_id, second.webhook_id) == (f"msg_{ref.batch_id}", f"msg_{ref.batch_id}:2")
    assert first.verified()["data"]["counts"]["failed"] == 1
    assert second.verified()["data"]["counts"]["stored"] == 1


def test_an_unfinished_batch_sends_nothing(rt, receiver, clock):
    refs = notifying_batch(rt, receiver.url, [None, None])
    assert run_to_end(rt, refs[0]) is JobState.STORED
    rt.ledger.slots.dispatch()

    assert take_outbox(rt, "notify") == []
    assert deliver(rt, refs[0].batch_id, "", 1) is None  # a stray entry sends nothing either
    clock.now += 3600
    assert retry_due(rt) == RetryReport()
    assert receiver.received == []


def test_a_batch_without_notify_queues_nothing(rt, new_job):
    ref = new_job()
    assert run_to_end(rt, ref) is JobState.STORED
    assert take_outbox(rt, "notify") == []


def test_a_failed_delivery_is_retried_by_the_sweep_with_the_same_webhook_id(rt, clock, caplog):
    with NotifyReceiver(statuses=[500]).running() as receiver:
        batch_id = finished_batch(rt, receiver.url)
        assert deliver_queued(rt) == [False]
        webhook_id = f"msg_{batch_id}"
        assert rt.ledger.notifications.pending() == {webhook_id: clock.now + RETRY_SCHEDULE_S[0]}

        assert retry_due(rt) == RetryReport()  # not due yet
        clock.now += RETRY_SCHEDULE_S[0]
        sweep(rt)

        first, second = receiver.received
    assert first.webhook_id == second.webhook_id == webhook_id
    assert first.body == second.body
    assert first.verified() == second.verified()
    assert rt.ledger.notifications.pending() == {}
    assert SECRET.removeprefix("whsec_") not in caplog.text
    assert "t0ken" not in caplog.text  # the URL's query is never logged
    assert "answered 500; attempt 2 of 8" in caplog.text


def test_a_delivery_nobody_answers_is_given_up_after_the_last_attempt(rt, clock, caplog):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_url = f"http://127.0.0.1:{unused.getsockname()[1]}/hook"
    batch_id = finished_batch(rt, closed_url)
    assert deliver_queued(rt) == [False]

    reports = []
    for wait_s in RETRY_SCHEDULE_S:
        clock.now += wait_s
        reports.append(retry_due(rt))

    assert reports == [RetryReport(failed=1)] * 6 + [RetryReport(given_up=1)]
    assert rt.ledger.notifications.pending() == {}
    assert not rt.ledger.notifications.known(f"msg_{batch_id}")
    assert "gave up after 8 attempts" in caplog.text


def test_two_sweeps_never_claim_one_delivery_at_once(rt, clock):
    store = rt.ledger.notifications
    assert store.file("msg_x", "http://127.0.0.1:9/", "{}", lease_s=0, keep_s=60)
    assert not store.file("msg_x", "http://127.0.0.1:9/", "{}", lease_s=0, keep_s=60)

    [claimed] = store.claim_due(limit=10, lease_s=120)
    assert (claimed.webhook_id, claimed.attempts) == ("msg_x", 0)
    assert store.claim_due(limit=10, lease_s=120) == []  # the other sweep finds it leased
    clock.now += 120
    assert [each.webhook_id for each in store.claim_due(limit=10, lease_s=120)] == ["msg_x"]


def rule_job(rt, batch_id, name, url):
    spec = job_spec(rt, batch_id, name, origin={"rule": RULE, "via": "test"})
    mark = EventMark(RULE, rt.settings.bucket, f"incoming/{name}.png", "etag", f"etag|{name}")
    recorded = rt.ledger.triggers.add(spec, source=f"rule:{RULE}", mark=mark, notify=url)
    assert recorded.value == "queued"
    return spec.ref


def test_a_rule_batch_notifies_each_job_as_it_ends(rt, receiver):
    batch_id = f"{RULE}{next(_ids)}-20300317"
    first = rule_job(rt, batch_id, "mug", receiver.url)
    second = rule_job(rt, batch_id, "cup", receiver.url)
    assert run_to_end(rt, first) is JobState.STORED
    assert deliver_queued(rt) == [True]
    assert rt.ledger.batches.cancel(batch_id) == 0  # `cup` is dispatched: it goes on
    assert run_to_end_dispatched(rt, second) is JobState.CANCELLED
    assert deliver_queued(rt) == [True]

    stored, cancelled = (each.verified() for each in receiver.received)
    assert [each.webhook_id for each in receiver.received] == [
        f"msg_{batch_id}:mug:1",
        f"msg_{batch_id}:cup:1",
    ]
    assert stored["type"] == cancelled["type"] == "job.finished"
    assert stored["data"] == {
        "batch": batch_id,
        "job": "mug",
        "state": "stored",
        "attempt": 1,
        "image": f"s3://{rt.settings.bucket}/inputs/{batch_id}/mug.png",
        "output": default_output_uri(rt, batch_id, "mug", "png"),
        "error": None,
        "cost_credits": 4.5,
        "rule": RULE,
    }
    assert cancelled["data"]["state"] == "cancelled"
    assert cancelled["data"]["output"] is None


def test_a_rule_with_notify_makes_its_rolling_batch_notify_per_job(rt, clock, receiver):
    prefix = f"incoming-{next(_ids)}/"
    rules = parse_rules(
        textwrap.dedent(RULES % receiver.url).replace('"incoming/"', f'"{prefix}"'),
        source="r.toml",
    )
    intake = TriggerIntake(rules, ledger=rt.ledger, storage=rt.storage, mask_wait_s=60, clock=clock)
    key = f"{prefix}mug.png"
    rt.storage.write(
        S3Uri("fillpipe", f"{prefix}mug.mask.png"), png(mode="L"), content_type="image/png"
    )
    rt.storage.write(S3Uri("fillpipe", key), png(), content_type="image/png")
    etag = rt.storage.head(S3Uri("fillpipe", key)).etag

    [outcome] = intake.handle([ObjectEvent("fillpipe", key, etag=etag, origin="test")])

    assert outcome.result == "queued"
    target = rt.ledger.notifications.target(outcome.job.batch_id)
    assert (target.url, target.per_job) == (receiver.url, True)
    assert run_to_end(rt, outcome.job) is JobState.STORED
    assert deliver_queued(rt) == [True]
    assert receiver.received[0].verified()["data"]["rule"] == RULE


def run_to_end_dispatched(rt, ref):
    record = rt.ledger.jobs.get(ref)
    return submit_job(rt, ref, record.attempt)


def test_a_job_id_is_percent_encoded_in_its_webhook_id(rt, receiver):
    batch_id = f"{RULE}{next(_ids)}-20300317"
    ref = rule_job(rt, batch_id, "mug 1+ü", receiver.url)
    assert run_to_end(rt, ref) is JobState.STORED
    assert deliver_queued(rt) == [True]
    assert receiver.received[0].webhook_id == f"msg_{batch_id}:mug%201%2B%C3%BC:1"


def test_notify_needs_a_secret_and_an_http_url(settings):
    check_target(settings, "http://10.0.0.7:8080/hook")  # a private address is fine
    with pytest.raises(ConfigError, match="FILLPIPE_NOTIFY_SECRET"):
        check_target(dataclasses.replace(settings, notify_secret=None), "https://h.example/")
    for url in ("ftp://h.example/x", "https:///no-host", "hooks.example.com", "http://h:99999/"):
        with pytest.raises(InputError, match="--notify"):
            check_target(settings, url)


def cli_env(valkey_url, s3_env, **extra):
    return {
        **s3_env,
        "FILLPIPE_REDIS_URL": valkey_url,
        "FILLPIPE_PROVIDER_URL": PROVIDER_URL,
        "FILLPIPE_PROVIDER_KEY": "test-provider-key",
        "FILLPIPE_SIGNING_KEY": "s" * 40,
        "FILLPIPE_NOTIFY_SECRET": "",
        **extra,
    }


@pytest.mark.parametrize(
    ("url", "secret", "message"),
    [
        ("https://hooks.example.com/x", "", "--notify needs FILLPIPE_NOTIFY_SECRET"),
        ("https://hooks.example.com/x", "whsec_c2hvcnQ=", "FILLPIPE_NOTIFY_SECRET must be whsec_"),
        ("file:///etc/passwd", SECRET, "is not an http:// or https:// URL"),
    ],
)
def test_submit_notify_is_refused_before_anything_is_recorded(
    rt, tmp_path, valkey_url, s3_env, url, secret, message
):
    manifest = tmp_path / "batch.jsonl"
    manifest.write_text('{"id": "a", "image": "a.png", "prompt": "p", "finetune_id": "f"}\n')
    env = cli_env(valkey_url, s3_env, FILLPIPE_NOTIFY_SECRET=secret)

    result = CliRunner().invoke(main, ["submit", str(manifest), "--notify", url], env=env)

    assert result.exit_code == 2, result.output
    assert message in result.output
    if secret:
        assert secret not in result.output
    assert rt.ledger.batches.recent(1) == []


def test_the_notify_secret_is_checked_and_never_shown(valkey_url, s3_env):
    env = cli_env(valkey_url, s3_env, FILLPIPE_NOTIFY_SECRET=SECRET)
    settings = Settings.from_environ(env)
    assert settings.notify_secret == Secret(SECRET)
    assert SECRET not in repr(settings)
    for bad in ("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "whsec_not base64!", "whsec_c2hvcnQ="):
        with pytest.raises(ConfigError, match="NOTIFY_SECRET") as caught:
            Settings.from_environ({**env, "FILLPIPE_NOTIFY_SECRET": bad})
        assert bad not in str(caught.value)


RULES = """
    [[rules]]
    name = "retouch"
    bucket = "fillpipe"
    prefix = "incoming/"
    output = "edited/{stem}.{ext}"
    prompt = "a glossy studio finish"
    finetune_id = "my-brand"
    notify = "%s"
"""


def test_a_rule_notify_is_an_http_url_and_needs_the_secret(settings):
    rules = parse_rules(textwrap.dedent(RULES % "https://hooks.example.com/f"), source="r.toml")
    assert rules.rules[0].notify == "https://hooks.example.com/f"
    check_notify(rules, settings)
    with pytest.raises(ConfigError, match=r"'retouch' \(line 2\) sets notify"):
        check_notify(rules, dataclasses.replace(settings, notify_secret=None))
    with pytest.raises(RulesInvalid, match=r"retouch\.notify"):
        parse_rules(textwrap.dedent(RULES % "mailto:ops@example.com"), source="r.toml")
