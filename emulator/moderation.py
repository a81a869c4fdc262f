"""Moderation: prompts refused at submit, and results withheld after processing.

A prompt holding one of the configured moderation words (whole words, any case) makes
the submit `Request Moderated`; one holding the content-moderation word makes the
finished task `Content Moderated`. Neither is charged. The reasons go to the task's
`details` as `{"Moderation Reasons": [...]}`, as the provider reports them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

REQUEST_REASON = "Prompt contains a blocked word"
CONTENT_REASON = "Generated content flagged by the safety filter"


class Moderation:
    """The configured word lists, matched against prompts."""

    def __init__(self, words: Sequence[str], content_word: str) -> None:
        self._words = _pattern(words)
        self._content_word = _pattern([content_word] if content_word else [])

    def request_reasons(self, prompt: str) -> list[str]:
        """Why the submit of `prompt` is refused; empty when it is not."""
        return [REQUEST_REASON] if _matches(self._words, prompt) else []

    def content_reasons(self, prompt: str) -> list[str]:
        """Why the result of `prompt` is withheld; empty when it is not."""
        return [CONTENT_REASON] if _matches(self._content_word, prompt) else []


def moderation_details(reasons: list[str]) -> dict[str, list[str]]:
    return {"Moderation Reasons": reasons}


def _pattern(words: Sequence[str]) -> re.Pattern[str] | None:
    if not words:
        return None
    alternatives = "|".join(re.escape(word) for word in words)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def _matches(pattern: re.Pattern[str] | None, prompt: str) -> bool:
    return pattern is not None and pattern.search(prompt) is not None
