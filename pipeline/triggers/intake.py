"""Trigger intake: storage events become jobs, each at most once.

For each event: a key that some rule takes as a mask releases the jobs waiting for it
and makes no job of its own. Otherwise every rule that wants the object gets a job,
after the object is checked again (HEAD): gone since, overwritten since (another event
will follow), or one of fillpipe's own outputs (its metadata says so, whatever its
prefix: the loop guard) make nothing. A job whose mask is not there yet waits for it
(`awaiting_mask`) until `mask_wait_s` has passed.

Jobs land in their rule's rolling batch of the (UTC) day, `<rule>-<YYYYMMDD>`, under a
job id derived from the rule, the object and the event's identity, so a redelivered
event records nothing twice; an older event of the same content (by sequencer)
neither. Events of content that changed since are caught by the HEAD.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

from pipeline.errors import ConfigError, InputError
from pipeline.ledger import Ledger
from pipeline.ledger.triggers import EventMark, Recorded
from pipeline.models import CompositeOptions, JobRef, JobSpec
from pipeline.routing import AccountRouter
from pipeline.settings import Settings
from pipeline.storage import ObjectHead, S3Uri, Storage
from pipeline.triggers.events import ObjectEvent, sequencer_order
from pipeline.triggers.masks import release_mask
from pipeline.triggers.rules import Rule, RuleSet

log = logging.getLogger(__name__)
DEFAULT_COMPOSITE = CompositeOptions()

# The output metadata that marks an object as one of fillpipe's own (pipeline.collect).
OUTPUT_MARK = "fillpipe-job"
STEM_CHARS = 40
JOB_HASH_CHARS = 16
RULE_SOURCE_PREFIX = "rule:"
CREATED = frozenset(recorded.value for recorded in Recorded if recorded.created)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Outcome:
    """What one event did: `result` is a `Recorded` value for a job, or a word saying
    why no job was made (`mask`, `no-rule`, `gone`, `overwritten`, `own-output`,
    `refused`)."""

    event: ObjectEvent
    result: str
    rule: str | None = None
    job: JobRef | None = None
    detail: str = ""

    @property
    def created(self) -> bool:
        """A job was recorded (not a duplicate, not skipped)."""
        return self.result in CREATED


def rolling_batch_id(rule: str, now: float) -> str:
    """The rule's batch of the UTC day: `retouch-20261207`."""
    return f"{rule}-{time.strftime('%Y%m%d', time.gmtime(now))}"


def job_id_for(rule: str, event: ObjectEvent, event_id: str) -> str:
    """A readable id, the same for every delivery of one event: `<stem>-<hash>`."""
    stem = _UNSAFE.sub("-", PurePosixPath(event.key).stem)[:STEM_CHARS].strip("-.") or "object"
    digest = hashlib.sha256(f"{rule}\0{event.bucket}\0{event.key}\0{event_id}".encode())
    return f"{stem}-{digest.hexdigest()[:JOB_HASH_CHARS]}"


class TriggerIntake:
    """Turns `ObjectEvent`s into jobs by `rules`. Thread-safe."""

    def __init__(
        self,
        rules: RuleSet,
        *,
        ledger: Ledger,
        storage: Storage,
        mask_wait_s: float,
        clock: Callable[[], float] = time.time,
        router: AccountRouter | None = None,
        composite: CompositeOptions = DEFAULT_COMPOSITE,
    ) -> None:
        """`router` decides each job's account (None: the rule's, else the ledger's
        default account); `composite` is how outputs are made where a rule does not say.
        Raises `ConfigError` when a rule names an account the ledger has no pool for."""
        self.rules = rules
        self._composite = composite
        self._ledger = ledger
        self._storage = storage
        self._mask_wait_s = mask_wait_s
        self._clock = clock
        self._router = router
        _check_accounts(rules, ledger)

    @classmethod
    def from_settings(cls, settings: Settings, rules: RuleSet) -> TriggerIntake:
        """The intake of `rules` (checked as `check_notify` does) with `settings`' stores."""
        check_notify(rules, settings)
        return cls(
            rules,
            ledger=Ledger.from_settings(settings),
            storage=Storage.from_settings(settings),
            mask_wait_s=settings.deadlines.mask_wait_s,
            router=AccountRouter.from_settings(settings),
            composite=settings.composite,
        )

    def close(self) -> None:
        self._ledger.close()
        if self._router is not None:
            self._router.close()

    def _account(self, rule: Rule) -> str:
        """The account of the rule's jobs (see `pipeline.routing`)."""
        if self._router is None:
            return rule.account or self._ledger.account().name
        return self._router.account_for(rule.account, rule.params.finetune_id)

    def handle(self, events: Iterable[ObjectEvent]) -> list[Outcome]:
        """Act on every event, in order. Raises on storage or ledger trouble (nothing is
        recorded twice when the caller hands the same events again)."""
        outcomes: list[Outcome] = []
        for event in events:
            outcomes.extend(self._one(event))
        for outcome in outcomes:
            log.info("%s", describe(outcome))
        return outcomes

    def _one(self, event: ObjectEvent) -> list[Outcome]:
        if self.rules.is_mask(event.bucket, event.key):
            released = release_mask(self._ledger, str(S3Uri(event.bucket, event.key)))
            return [Outcome(event, "mask", detail=f"{len(released)} job(s) released")]
        rules = self.rules.for_object(event.bucket, event.key)
        if not rules:
            return [Outcome(event, "no-rule")]
        head = self._storage.head(S3Uri(event.bucket, event.key))
        if head is None:
            return [Outcome(event, "gone")]
        skip = _skip_reason(event, head)
        if skip is not None:
            return [Outcome(event, skip)]
        return [self._record(rule, event, head) for rule in rules]

    def _record(self, rule: Rule, event: ObjectEvent, head: ObjectHead) -> Outcome:
        now = self._clock()
        object_id = event.version_id or head.version_id or head.etag
        event_id = f"{object_id}|{event.sequencer or ''}"
        ref = JobRef(rolling_batch_id(rule.name, now), job_id_for(rule.name, event, event_id))
        try:
            composite = rule.composite.over(self._composite)
            spec = _spec(rule, event, head, ref, self._account(rule), composite)
        except InputError as error:
            log.warning("rule %s cannot make a job of %s: %s", rule.name, event.key, error)
            return Outcome(event, "refused", rule.name, detail=str(error))
        mask_uri = spec.mask_uri if spec.mask_uri and not self._exists(spec.mask_uri) else None
        mark = EventMark(rule.name, event.bucket, event.key, object_id, event_id, _order(event))
        recorded = self._ledger.triggers.add(
            spec,
            source=RULE_SOURCE_PREFIX + rule.name,
            mark=mark,
            mask_uri=mask_uri,
            late_at=None if mask_uri is None else now + self._mask_wait_s,
            notify=rule.notify,
        )
        if recorded is Recorded.AWAITING_MASK and mask_uri and self._exists(mask_uri):
            release_mask(self._ledger, mask_uri)  # it landed while the job was recorded
        return Outcome(event, recorded.value, rule.name, ref)

    def _exists(self, uri: str) -> bool:
        return self._storage.head(S3Uri.parse(uri)) is not None


def describe(outcome: Outcome) -> str:
    """One log line for an outcome."""
    where = str(S3Uri(outcome.event.bucket, outcome.event.key))
    rule = f"rule {outcome.rule}: " if outcome.rule else ""
    job = f" job {outcome.job}" if outcome.job else ""
    detail = f" ({outcome.detail})" if outcome.detail else ""
    return f"{rule}{where} [{outcome.event.origin}] -> {outcome.result}{job}{detail}"


def _skip_reason(event: ObjectEvent, head: ObjectHead) -> str | None:
    """Why an object that exists makes no job: one of fillpipe's outputs, or changed
    since the event (the later event makes the job)."""
    if OUTPUT_MARK in head.metadata:
        return "own-output"
    if event.version_id and head.version_id and event.version_id != head.version_id:
        return "overwritten"
    if not event.version_id and event.etag and event.etag != head.etag:
        return "overwritten"
    return None


def _order(event: ObjectEvent) -> str:
    return sequencer_order(event.sequencer) if event.sequencer else ""


def _check_accounts(rules: RuleSet, ledger: Ledger) -> None:
    unknown = [
        f"rule {rule.name!r} (line {rule.line}) names account {rule.account!r}"
        for rule in rules.rules
        if rule.account is not None and rule.account not in ledger.pools
    ]
    if unknown:
        raise ConfigError(
            f"{'; '.join(unknown)}, which is not configured "
            f"(configured: {', '.join(ledger.pools)}; see FILLPIPE_ACCOUNTS_FILE)"
        )


def check_notify(rules: RuleSet, settings: Settings) -> None:
    """`ConfigError` when a rule sets `notify` and no notify secret is configured to sign
    its notifications with: refused as the rules are loaded, before any job is recorded."""
    notifying = [f"{rule.name!r} (line {rule.line})" for rule in rules.rules if rule.notify]
    if notifying and settings.notify_secret is None:
        raise ConfigError(
            f"rule {', '.join(notifying)} sets notify, which needs FILLPIPE_NOTIFY_SECRET "
            "(whsec_ and a base64 key, which the receiver verifies signatures with)"
        )


def _spec(
    rule: Rule,
    event: ObjectEvent,
    head: ObjectHead,
    ref: JobRef,
    account: str,
    composite: CompositeOptions,
) -> JobSpec:
    origin = {"rule": rule.name, "via": event.origin, "etag": head.etag, "event": event.event_name}
    if head.version_id:
        origin["version_id"] = head.version_id
    return JobSpec(
        ref=ref,
        image_uri=str(S3Uri(event.bucket, event.key)),
        mask_uri=rule.mask_uri(event.key),
        output_uri=rule.output_uri(event.key),
        params=rule.params,
        tags=dict(rule.tags),
        origin=origin,
        account=account,
        composite=composite,
    )
