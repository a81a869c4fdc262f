"""The one exception tree of fillpipe, split by what the caller should do.

    FillpipeError
    ├── ConfigError                 settings are missing or malformed: fix the environment
    ├── InputError                  the user's input is wrong: fix it, nothing was spent
    │   ├── ManifestInvalid         a manifest's rows are wrong: every `Problem` listed
    │   ├── BadValue                one manifest value fails a check (becomes a `Problem`)
    │   ├── RulesInvalid            a trigger rules file is wrong: every `Problem` listed
    │   ├── UnknownAccount          a job, rule or command names an account that is not
    │   │                           configured
    │   ├── MalformedEvent          a storage event that is not S3's, SNS's or
    │   │                           EventBridge's shape (acknowledged, never retried)
    │   └── BodyTooLarge            a request body over the receiver's limit (413)
    ├── RetryableError              try the same thing again later
    │   ├── ProviderUnavailable     connect error, 5xx on a GET: safe to repeat
    │   ├── RateLimited             429: wait `retry_after_s`, then repeat
    │   ├── StorageUnavailable      S3 failed in a way worth repeating
    │   └── NotReadyYet             a callback beat its submit's bookkeeping: collect
    │                               again shortly
    ├── AmbiguousSubmit             5xx or read timeout on the paid POST: the task may
    │                               exist and be billed; never re-POST blindly
    ├── PermanentError              repeating cannot help: fail the job
    │   ├── ProviderRejected        4xx the provider explained (422 detail, 400)
    │   ├── AccountProblem          the account cannot submit: pause every batch
    │   │   ├── OutOfCredits        402: top up, then `fillpipe resume`
    │   │   └── KeyRejected         401/403: fix the API key, then `fillpipe resume`
    │   ├── EndpointWithdrawn       404/405/410 for an endpoint's path: the provider no
    │   │                           longer offers it (finetune creation, say)
    │   ├── ResultUnavailable       the task ended without a usable result
    │   │   ├── ExpiredResultUrl    the signed download URL expired: re-read it from the
    │   │   │                       polling URL
    │   │   └── ResultLost          the provider no longer has the result: resubmit or
    │   │                           fail, by setting
    │   └── UnsafeResult            a result URL or body that must not be fetched or stored
    ├── VerificationError           a callback failed a check (token, secret, signature);
    │                               answered with 401 and nothing else
    ├── MalformedCallback           a verified callback whose body is not the provider's
    │                               shape: answered with 400
    ├── WaitTimedOut                a command waited longer than it was allowed to
    ├── StackError                  a server of the embedded stack could not start or run
    └── IllegalMove                 a programming error: a job state change the table in
                                    `pipeline.states` does not allow

Every exception pickles (Celery sends them between processes), and none of them
carries a secret in its message.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_PROBLEMS_LISTED = 200


class FillpipeError(Exception):
    """Root of every error fillpipe raises on purpose."""


class ConfigError(FillpipeError):
    """A setting is missing or malformed."""


class InputError(FillpipeError):
    """The user's input cannot be processed as given; nothing was spent."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest, where it is and how to fix it."""

    source: str
    line: int
    field: str
    message: str
    hint: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}: " + (f"{self.field}: " if self.field else "")
        return where + self.message + (f" ({self.hint})" if self.hint else "")


class ManifestInvalid(InputError):
    """The manifest has problems; `problems` lists every one of them."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems)
        self.problems = problems

    def __str__(self) -> str:
        count = len(self.problems)
        lines = [f"the manifest has {count} problem{'' if count == 1 else 's'}:"]
        lines += [str(problem) for problem in self.problems[:MAX_PROBLEMS_LISTED]]
        if count > MAX_PROBLEMS_LISTED:
            lines.append(f"… and {count - MAX_PROBLEMS_LISTED} more")
        return "\n".join(lines)


class BadValue(InputError):
    """A manifest value that fails a check: what is wrong and how to fix it."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message, hint)
        self.message = message
        self.hint = hint


class RulesInvalid(ManifestInvalid):
    """A trigger rules file has problems; `problems` lists every one of them."""

    def __str__(self) -> str:
        return super().__str__().replace("the manifest has", "the rules file has", 1)


class UnknownAccount(InputError):
    """A job, rule or command names a provider account that is not configured."""


class MalformedEvent(InputError):
    """A storage event notification fillpipe cannot read: not JSON, or not the shape of
    an S3, MinIO, SNS or EventBridge notification."""


class BodyTooLarge(InputError):
    """A request body over the receiver's limit."""


class RetryableError(FillpipeError):
    """The same operation may succeed if repeated later."""


class ProviderUnavailable(RetryableError):
    """The provider could not be reached or answered 5xx to a request safe to repeat."""


class RateLimited(RetryableError):
    """The provider refused for now (429); `retry_after_s` says how long to wait."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message, retry_after_s)
        self.message = message
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        return self.message


class StorageUnavailable(RetryableError):
    """The object store failed in a way that may pass (5xx, throttling, a dropped link)."""


class NotReadyYet(RetryableError):
    """The callback beat the submit task's bookkeeping; collect again shortly."""


class AmbiguousSubmit(FillpipeError):
    """The paid POST failed in a way that leaves open whether the task was created."""


class PermanentError(FillpipeError):
    """Repeating the operation cannot help."""


class ProviderRejected(PermanentError):
    """The provider refused the request and said why (status and its message)."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message, status_code)
        self.message = message
        self.status_code = status_code

    def __str__(self) -> str:
        return f"provider answered {self.status_code}: {self.message}"


class AccountProblem(PermanentError):
    """The provider account cannot take submissions until someone acts: pause, not fail."""


class OutOfCredits(AccountProblem):
    """The provider account has no credits left (402)."""


class KeyRejected(AccountProblem):
    """The provider refused the API key (401/403)."""


class EndpointWithdrawn(PermanentError):
    """The provider no longer offers an endpoint: its path answered 404, 405 or 410.

    `what` names what the endpoint did ("finetune creation"), `request` its method and
    path ("POST /v1/finetune"); the message says both, the status and the provider's URL.
    """

    def __init__(self, what: str, request: str, status_code: int, base_url: str) -> None:
        super().__init__(what, request, status_code, base_url)
        self.what = what
        self.request = request
        self.status_code = status_code
        self.base_url = base_url

    def __str__(self) -> str:
        return (
            f"the provider at {self.base_url} no longer offers {self.what} "
            f"({self.request} answered {self.status_code})"
        )


class ResultUnavailable(PermanentError):
    """The provider task ended without a result that can be stored."""


class ExpiredResultUrl(ResultUnavailable):
    """The delivery URL no longer serves the result; re-read it from the polling URL."""


class ResultLost(ResultUnavailable):
    """The provider no longer has a finished task's result (unknown task, expired URL)."""


class UnsafeResult(PermanentError):
    """A result URL or payload that fillpipe refuses to fetch or store."""


class VerificationError(FillpipeError):
    """A callback failed verification. The message is for logs, never for the caller;
    `reason` names the check that failed (`token`, `secret` or `signature`), for metrics."""

    def __init__(self, message: str, reason: str = "token") -> None:
        super().__init__(message, reason)
        self.message = message
        self.reason = reason

    def __str__(self) -> str:
        return self.message


class MalformedCallback(FillpipeError):
    """A verified callback whose body is not one of the provider's shapes."""


class WaitTimedOut(FillpipeError):
    """Waiting for something (a batch, a finetune) took longer than allowed."""


class StackError(FillpipeError):
    """A server of the embedded stack could not be started or run."""

    def __init__(self, service: str, problem: str, log_tail: str = "") -> None:
        super().__init__(service, problem, log_tail)
        self.service = service
        self.problem = problem
        self.log_tail = log_tail

    def __str__(self) -> str:
        text = f"{self.service}: {self.problem}"
        if self.log_tail:
            text += f"\nlast lines of its log:\n{self.log_tail}"
        return text


class IllegalMove(FillpipeError):
    """A programming error: code asked for a job state change the table forbids."""
