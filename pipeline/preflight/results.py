"""What a preflight check reports: its name, ok / warn / fail, what it found, the fix."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    """A check's outcome. `warn`: works, but something deserves a look."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"

    @property
    def label(self) -> str:
        """How a line shows it: `ok`, `warn`, `FAIL` (capitals catch the eye)."""
        return "FAIL" if self is Status.FAIL else self.value


@dataclass(frozen=True)
class CheckResult:
    """One check: `detail` says what was checked and found, `fix` how to fix it (empty
    when there is nothing to fix). Neither ever holds a secret."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "fix": self.fix,
        }


def ok(name: str, detail: str) -> CheckResult:
    return CheckResult(name, Status.OK, detail)


def warn(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, Status.WARN, detail, fix)


def fail(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, Status.FAIL, detail, fix)


def count(number: int, noun: str) -> str:
    """`1 key`, `2 keys`."""
    return f"{number} {noun}{'' if number == 1 else 's'}"
