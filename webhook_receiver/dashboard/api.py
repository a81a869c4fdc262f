"""The dashboard's JSON API: what its pages show, for scripts (`Authorization: Bearer`).

GET  /api/batches?page=N             {"batches": [...], "page": N, "pages": M}
GET  /api/batches/{batch}?page=N&failed=1
                                     {"batch": {...}, "jobs": [...], "page", "pages"};
                                     each job as a line of results.jsonl, plus its account
GET  /api/accounts                   {"accounts": [...]}
POST /api/batches/{batch}/retry?job=ID   {"retried": N}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pipeline.models import JobRecord
from pipeline.overview import account_overview, batch_list
from pipeline.reports import result_row
from webhook_receiver.dashboard.pages import page_number, requested_jobs, retry_jobs

if TYPE_CHECKING:
    from webhook_receiver.dashboard.app import DashboardSources


def job_json(record: JobRecord) -> dict[str, Any]:
    return {**result_row(record), "account": record.account}


class JsonApi:
    """The JSON routes over the dashboard's sources."""

    def __init__(self, sources: DashboardSources) -> None:
        self._sources = sources

    def batches(self, request: Request) -> Response:
        listing = batch_list(self._sources.ledger, self._sources.clock(), page=page_number(request))
        return JSONResponse(
            {
                "batches": [batch.as_json() for batch in listing.batches],
                "page": listing.page,
                "pages": listing.pages,
            }
        )

    def batch(self, request: Request) -> Response:
        batch_id = request.path_params["batch"]
        found = requested_jobs(self._sources, request)
        if found is None:
            return JSONResponse({"error": f"no batch {batch_id!r} in the ledger"}, 404)
        return JSONResponse(
            {
                "batch": found.batch.as_json(),
                "jobs": [job_json(job) for job in found.jobs],
                "page": found.page,
                "pages": found.pages,
            }
        )

    def accounts(self, request: Request) -> Response:
        sources = self._sources
        accounts = account_overview(sources.ledger, sources.flavors, sources.balances)
        return JSONResponse({"accounts": [account.as_json() for account in accounts]})

    def retry(self, request: Request) -> Response:
        batch_id = request.path_params["batch"]
        if self._sources.ledger.batches.summary(batch_id) is None:
            return JSONResponse({"error": f"no batch {batch_id!r} in the ledger"}, 404)
        retried = retry_jobs(self._sources, batch_id, request.query_params.get("job"))
        return JSONResponse({"retried": retried})
