"""The collaborators one process needs, built once from settings and closed at exit."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import redis
from botocore.exceptions import BotoCoreError

from pipeline.delivery import ResultFetcher
from pipeline.errors import FillpipeError
from pipeline.ledger import Ledger
from pipeline.provider import Providers
from pipeline.routing import AccountRouter
from pipeline.sent_inputs import SentInputs
from pipeline.settings import Settings
from pipeline.signing import CallbackSigner
from pipeline.storage import Storage

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Settings plus the clients built from them; tasks and endpoints take one of these."""

    settings: Settings
    ledger: Ledger
    storage: Storage
    # One provider client per account: `providers[job.spec.account]`.
    providers: Providers
    router: AccountRouter
    fetcher: ResultFetcher
    signer: CallbackSigner
    clock: Callable[[], float] = field(default=time.time)
    # What each job's submit sent, for its collect in this process (`pipeline.sent_inputs`).
    sent_inputs: SentInputs = field(default_factory=SentInputs)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        provider_transport: httpx.BaseTransport | None = None,
        result_transport: httpx.BaseTransport | None = None,
    ) -> Runtime:
        providers = Providers(settings.accounts, transport=provider_transport)
        return cls(
            settings=settings,
            ledger=Ledger.from_settings(settings, clock=clock),
            storage=Storage.from_settings(settings),
            providers=providers,
            router=AccountRouter(settings.accounts, providers),
            fetcher=ResultFetcher(
                settings.result_hosts,
                max_bytes=settings.result_max_bytes,
                transport=result_transport,
            ),
            signer=CallbackSigner(
                settings.signing_keys, max_age_s=settings.callback_token_max_age_s, clock=clock
            ),
            clock=clock,
        )

    def warm_up(self) -> None:
        """Open the Redis and S3 connections now, so a process's first job does not pay
        for them (~10 ms of CPU). Trouble is logged, not raised: the jobs retry or report it."""
        try:
            self.ledger.redis.ping()
            self.storage.reach(self.settings.bucket)
        except (FillpipeError, redis.RedisError, BotoCoreError) as error:
            log.warning("warm-up: %s (jobs will retry)", error)

    def callback_url(self, token: str) -> str:
        """The webhook URL for a callback token (callbacks on: the public URL is set)."""
        return f"{self.settings.public_url}/v1/callbacks/bfl/{token}"

    def close(self) -> None:
        self.providers.close()
        self.fetcher.close()
        self.ledger.close()
