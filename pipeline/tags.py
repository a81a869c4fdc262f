"""S3 object tags: the character and length rules, and how many tags a user may add.

Every output carries fillpipe's own tags (see `pipeline.collect`); S3 allows ten per object,
so user tags get what is left.
"""

from __future__ import annotations

import unicodedata

MAX_TAGS_PER_OBJECT = 10
OWN_TAG_KEYS = ("fillpipe-batch", "fillpipe-job", "fillpipe-finetune")
MAX_USER_TAGS = MAX_TAGS_PER_OBJECT - len(OWN_TAG_KEYS)
MAX_KEY_CHARS = 128
MAX_VALUE_CHARS = 256
RESERVED_KEY_PREFIXES = ("aws:", "fillpipe-")
ALLOWED_PUNCTUATION = frozenset(" +-=._:/@")
# Unicode letters, numbers and separators (spaces), as in S3's [\p{L}\p{Z}\p{N}_.:/=+\-@]*.
_ALLOWED_CATEGORIES = frozenset("LNZ")
ALLOWED_CHARS_HINT = "letters, digits, spaces and + - = . _ : / @"


def disallowed_chars(text: str) -> str:
    """The characters of `text` that S3 tags refuse, each once, in order of appearance."""
    bad = dict.fromkeys(ch for ch in text if not _allowed(ch))
    return "".join(bad)


def _allowed(ch: str) -> bool:
    return ch in ALLOWED_PUNCTUATION or unicodedata.category(ch)[0] in _ALLOWED_CATEGORIES


def value_problem(value: str) -> str | None:
    """Why `value` cannot be an S3 tag value, or None when it can."""
    if len(value) > MAX_VALUE_CHARS:
        return f"is {len(value)} characters long, over S3's {MAX_VALUE_CHARS} for tag values"
    bad = disallowed_chars(value)
    if bad:
        return f"has characters S3 tags do not allow: {bad!r}"
    return None


def key_problem(key: str) -> str | None:
    """Why `key` cannot be a user's S3 tag key, or None when it can."""
    if not key:
        return "is empty"
    if len(key) > MAX_KEY_CHARS:
        return f"is {len(key)} characters long, over S3's {MAX_KEY_CHARS} for tag keys"
    reserved = next((p for p in RESERVED_KEY_PREFIXES if key.lower().startswith(p)), None)
    if reserved:
        return f"starts with the reserved prefix {reserved!r}"
    bad = disallowed_chars(key)
    if bad:
        return f"has characters S3 tags do not allow: {bad!r}"
    return None
