"""`fillpipe demo --trigger`: sample product photos dropped into the bucket come out
edited, with no command run for them.

Like `fillpipe demo` it uses the stack the environment names, else starts an embedded
one, and trains a brand finetune. It then writes a trigger rule for a fresh prefix
(shown on stderr, kept as DIR/demo-rules.toml), runs the listing poller over that
prefix (what `fillpipe watch s3` and `fillpipe up --rules` run), drops each sample's
photo into the bucket and, a moment later, its mask, and waits until every photo's
job has ended in the rule's batch of the day. It prints what `fillpipe demo` prints.
"""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path

from fillpipe.demo import (
    DEMO_TIMEOUT_S,
    SAMPLE_SIZE_PX,
    DemoRun,
    train_demo_finetune,
    wait_for_demo_batch,
    write_contact_sheet,
)
from fillpipe.output import say
from fillpipe.samples import Sample, make_samples
from pipeline.models import JobRecord
from pipeline.reports import write_results
from pipeline.runtime import Runtime
from pipeline.storage import S3Uri
from pipeline.triggers.intake import TriggerIntake, rolling_batch_id
from pipeline.triggers.listing import ListingPoller
from pipeline.triggers.rules import load_rules
from pipeline.triggers.watching import Health, paced, run_until_stopped

RULE_NAME = "demo"
POLL_INTERVAL_S = 0.5
MASK_AFTER_S = 1.0
RULE = """# The trigger rule of `fillpipe demo --trigger`: photos landing under {prefix}
# become edits; each photo's mask is its sibling {{stem}}.mask.png.
[[rules]]
name = "{name}"
bucket = "{bucket}"
prefix = "{prefix}"
suffix = ".png"
mask = "{{dir}}/{{stem}}.mask.png"
output = "s3://{bucket}/{prefix}edited/{{stem}}.{{ext}}"
prompt = "a glossy studio finish, FPBRAND style"
finetune_id = "{finetune_id}"
finetune_strength = 1.2
output_format = "png"
tags = {{ demo = "trigger" }}
"""


def run_trigger_demo(rt: Runtime, *, jobs: int, out_dir: Path, state_dir: Path) -> DemoRun:
    """Drop `jobs` samples into the bucket under a rule; the run as `fillpipe demo`'s."""
    finetune_id = train_demo_finetune(rt)
    prefix = f"demo-trigger/{secrets.token_hex(4)}/"
    rules_file = _write_rule(rt, state_dir, prefix, finetune_id)
    say(f"Rule {RULE_NAME!r} ({rules_file}) watches s3://{rt.settings.bucket}/{prefix}")
    samples = make_samples(jobs, size_px=SAMPLE_SIZE_PX)
    poller = ListingPoller(
        TriggerIntake(
            load_rules(rules_file),
            ledger=rt.ledger,
            storage=rt.storage,
            mask_wait_s=rt.settings.deadlines.mask_wait_s,
            clock=rt.clock,
            router=rt.router,
        ),
        rt.storage,
        rt.ledger.triggers.listing(rt.settings.bucket, prefix),
        bucket=rt.settings.bucket,
        prefix=prefix,
    )
    poller.poll()  # the first listing: nothing there yet
    stopping = threading.Event()
    watcher = threading.Thread(
        target=run_until_stopped,
        args=("demo watcher", paced(poller.poll, POLL_INTERVAL_S, stopping), stopping, Health()),
    )
    watcher.start()
    try:
        batch_id = rolling_batch_id(RULE_NAME, rt.clock())
        _drop(rt, samples, prefix)
        records = _await_jobs(rt, batch_id, samples, prefix)
    finally:
        stopping.set()
        watcher.join()
    sheet = write_contact_sheet(
        rt, _pairs(samples, records), out_dir / f"contact-sheet-{batch_id}.png"
    )
    return DemoRun(finetune_id, batch_id, records, str(write_results(rt, batch_id)), sheet)


def _write_rule(rt: Runtime, state_dir: Path, prefix: str, finetune_id: str) -> Path:
    path = state_dir.expanduser().resolve() / "demo-rules.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = RULE.format(
        name=RULE_NAME, bucket=rt.settings.bucket, prefix=prefix, finetune_id=finetune_id
    )
    path.write_text(text)
    return path


def _drop(rt: Runtime, samples: list[Sample], prefix: str) -> None:
    """Each photo, then (a moment later, as uploads go) its mask."""
    bucket = rt.settings.bucket
    for sample in samples:
        key = f"{prefix}{sample.name}.png"
        rt.storage.write(S3Uri(bucket, key), sample.image_png, content_type="image/png")
        say(f"dropped s3://{bucket}/{key}")
    time.sleep(MASK_AFTER_S)
    for sample in samples:
        mask = S3Uri(bucket, f"{prefix}{sample.name}.mask.png")
        rt.storage.write(mask, sample.mask_png, content_type="image/png")
    say(f"dropped their masks ({{stem}}.mask.png) {MASK_AFTER_S:g} s later")


def _await_jobs(rt: Runtime, batch_id: str, samples: list[Sample], prefix: str) -> list[JobRecord]:
    """This run's jobs of the rule's batch, once each has ended."""
    wanted = {f"s3://{rt.settings.bucket}/{prefix}{sample.name}.png" for sample in samples}
    deadline = time.monotonic() + DEMO_TIMEOUT_S
    while len(_mine(rt, batch_id, wanted)) < len(wanted):
        if time.monotonic() > deadline:
            break
        time.sleep(POLL_INTERVAL_S)
    wait_for_demo_batch(rt, batch_id)
    return _mine(rt, batch_id, wanted)


def _mine(rt: Runtime, batch_id: str, wanted: set[str]) -> list[JobRecord]:
    return [r for r in rt.ledger.jobs.of_batch(batch_id) if r.spec.image_uri in wanted]


def _pairs(
    samples: list[Sample], records: list[JobRecord]
) -> list[tuple[Sample, JobRecord | None]]:
    by_image = {record.spec.image_uri.rsplit("/", 1)[-1]: record for record in records}
    return [(sample, by_image.get(f"{sample.name}.png")) for sample in samples]
