"""The refusals the emulated provider answers with, each a status and a `detail` body.

ApiError                 answered as `{"detail": "…"}` with `status_code`
├── Unauthorized         401  no API key
├── PaymentRequired      402  the key's credits would go negative
├── Forbidden            403  wrong API key, admin token or delivery signature
├── NotFound             404  unknown finetune or delivery, disabled admin
├── InvalidRequest       422  `{"detail": [issue, …]}` in FastAPI's form
├── TooManyRequests      429  the key's active-task limit, with Retry-After
└── ServerError          500  an injected fault (`emulator.faults`)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class Issue:
    """One entry of a 422 `detail` list: where (`loc`), what (`msg`) and its `type`."""

    loc: tuple[str | int, ...]
    msg: str
    type: str

    def as_json(self) -> dict[str, Any]:
        return {"loc": list(self.loc), "msg": self.msg, "type": self.type}


class ApiError(Exception):
    """A refusal of a request; the HTTP layer answers it with `body()` and `headers()`."""

    status_code: ClassVar[int] = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail}

    def headers(self) -> dict[str, str]:
        return {}


class Unauthorized(ApiError):
    status_code = 401


class PaymentRequired(ApiError):
    status_code = 402


class Forbidden(ApiError):
    status_code = 403


class NotFound(ApiError):
    status_code = 404


class InvalidRequest(ApiError):
    """Every problem found in a request, listed at once."""

    status_code = 422

    def __init__(self, issues: Sequence[Issue]) -> None:
        super().__init__("; ".join(f"{issue.loc}: {issue.msg}" for issue in issues))
        self.issues = tuple(issues)

    def body(self) -> dict[str, Any]:
        return {"detail": [issue.as_json() for issue in self.issues]}


class TooManyRequests(ApiError):
    status_code = 429

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class ServerError(ApiError):
    status_code = 500


def raise_for_issues(issues: Sequence[Issue]) -> None:
    """Raise `InvalidRequest` listing `issues`, if there are any."""
    if issues:
        raise InvalidRequest(issues)
