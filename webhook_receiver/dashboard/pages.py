"""The dashboard's HTML pages, its previews and its retry form.

Handlers are plain functions: Starlette runs them in its thread pool, where the ledger's
and S3's blocking clients belong. Each reads a bounded amount (`pipeline.overview`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

import redis
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from pipeline.errors import InputError, PermanentError
from pipeline.models import JobRecord, JobRef
from pipeline.overview import JobPage, account_overview, batch_list, job_page
from pipeline.states import JobState
from webhook_receiver.dashboard import formats

if TYPE_CHECKING:
    from webhook_receiver.dashboard.app import DashboardSources

PREVIEW_KINDS = ("image", "mask", "output")
PREVIEW_CACHE = "private, max-age=86400"


MAX_PAGE_DIGITS = 9


def page_number(request: Request) -> int:
    """`?page=N`, from 1; anything else is the first page (past the last, the last)."""
    text = request.query_params.get("page", "1")
    if not (text.isascii() and text.isdecimal()) or len(text) > MAX_PAGE_DIGITS:
        return 1
    return max(1, int(text))


def only_failed(request: Request) -> bool:
    return request.query_params.get("failed") in ("1", "true")


def batches_url(page: int) -> str:
    return f"/?page={page}"


def jobs_url(batch_id: str, failed: bool) -> Callable[[int], str]:
    """The URL of each page of the batch's jobs (the failed ones only, with `failed`)."""
    base = f"/batches/{quote(batch_id)}?" + ("failed=1&" if failed else "")
    return lambda page: f"{base}page={page}"


def preview_url(job: JobRecord, kind: str) -> str:
    """Where the dashboard serves one of the job's previews."""
    query = urlencode({"job": job.ref.job_id, "v": job.attempt})
    return f"/batches/{quote(job.ref.batch_id)}/thumbs/{kind}?{query}"


class Pages:
    """The HTML routes over the dashboard's sources."""

    def __init__(self, sources: DashboardSources, templates: Jinja2Templates) -> None:
        self._sources = sources
        self._templates = templates
        formats.install(templates.env)
        templates.env.globals.update(preview_url=preview_url, batches_url=batches_url)

    def batches(self, request: Request) -> Response:
        """The newest batches, a page at a time, and every account."""
        listing = batch_list(self._sources.ledger, self._sources.clock(), page=page_number(request))
        context = {"listing": listing, "accounts": self._accounts()}
        return self._templates.TemplateResponse(request, "batches.html", context)

    def batch(self, request: Request) -> Response:
        """One batch and a page of its jobs."""
        batch_id = request.path_params["batch"]
        found = requested_jobs(self._sources, request)
        if found is None:
            context = {"batch_id": batch_id}
            return self._templates.TemplateResponse(request, "missing.html", context, 404)
        context = {
            "view": found,
            "accounts": self._accounts(),
            "retried": request.query_params.get("retried"),
            "jobs_url": jobs_url(batch_id, found.only_failed),
            "failed_state": JobState.FAILED,
        }
        return self._templates.TemplateResponse(request, "batch.html", context)

    def retry(self, request: Request) -> Response:
        """Put the failed jobs (or `?job=ID`) back in line; back to the batch page,
        which says how many were."""
        batch_id = request.path_params["batch"]
        retried = retry_jobs(self._sources, batch_id, request.query_params.get("job"))
        back = {"retried": retried}
        if only_failed(request):
            back["failed"] = 1
        if "page" in request.query_params:
            back["page"] = page_number(request)
        return RedirectResponse(f"/batches/{quote(batch_id)}?{urlencode(back)}", status_code=303)

    def thumbnail(self, request: Request) -> Response:
        """A preview of the job's image, mask or output, read through the app."""
        kind, job_id = request.path_params["kind"], request.query_params.get("job", "")
        job = self._sources.ledger.jobs.get(JobRef(request.path_params["batch"], job_id))
        if kind not in PREVIEW_KINDS or job is None:
            return Response("no such job or preview", status_code=404)
        uri = preview_source(job, kind)
        if uri is None:
            return Response("the job has no such image", status_code=404)
        try:
            body = self._sources.thumbnails.get(uri, version=str(job.attempt))
        except (InputError, PermanentError) as error:  # missing, not an image, refused
            return Response(str(error), status_code=404)
        return Response(body, media_type="image/jpeg", headers={"Cache-Control": PREVIEW_CACHE})

    def healthz(self, request: Request) -> Response:
        try:
            self._sources.ledger.redis.ping()
        except redis.RedisError:
            return JSONResponse({"status": "redis unreachable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    def _accounts(self) -> list[object]:
        sources = self._sources
        return list(account_overview(sources.ledger, sources.flavors, sources.balances))


def requested_jobs(sources: DashboardSources, request: Request) -> JobPage | None:
    """The page of the batch's jobs the request asks for (`?page=`, `?failed=1`); None
    for a batch the ledger does not hold."""
    return job_page(
        sources.ledger,
        request.path_params["batch"],
        sources.clock(),
        page=page_number(request),
        only_failed=only_failed(request),
    )


def preview_source(job: JobRecord, kind: str) -> str | None:
    """The object a preview shows: the job's image, its mask, or its stored output."""
    if kind == "image":
        return job.spec.image_uri
    if kind == "mask":
        return job.spec.mask_uri
    return job.spec.output_uri if job.state is JobState.STORED else None


def retry_jobs(sources: DashboardSources, batch_id: str, job_id: str | None) -> int:
    """Put one failed job, or every failed job of the batch, back in line; how many."""
    batches = sources.ledger.batches
    if job_id is None:
        return batches.retry_failed(batch_id)
    return int(batches.retry(JobRef(batch_id, job_id)))
