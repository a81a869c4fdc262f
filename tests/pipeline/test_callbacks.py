"""The callback body parser: both provider shapes, bounded, and total over any bytes."""

import json
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.callbacks import (
    MAX_DEPTH,
    MAX_TASK_ID_CHARS,
    CallbackReport,
    MalformedCallback,
    parse_callback,
)
from pipeline.provider import TaskStatus

pytestmark = pytest.mark.timeout(60)

# The provider's words (either shape) and what they mean.
WORDS = {
    "SUCCESS": TaskStatus.READY,
    "Ready": TaskStatus.READY,
    "processing": TaskStatus.PENDING,
    "Pending": TaskStatus.PENDING,
    "FAILED": TaskStatus.ERROR,
    "Error": TaskStatus.ERROR,
    "Request Moderated": TaskStatus.REQUEST_MODERATED,
    "Content Moderated": TaskStatus.CONTENT_MODERATED,
    "Task not found": TaskStatus.NOT_FOUND,
}

RESULT = {
    "sample": "https://delivery.eu1.bfl.ai/results/x/sample.jpeg?se=1&sig=abc",
    "seed": 7,
    "prompt": "a matte terracotta glaze",
    "start_time": 1700000000.5,
    "end_time": 1700000004.25,
    "duration": 3.75,
}


def parse_or_refuse(body: bytes) -> CallbackReport | None:
    try:
        return parse_callback(body)
    except MalformedCallback:
        return None


@pytest.mark.parametrize(
    ("document", "task_id", "status"),
    [
        ({"task_id": "t-1", "status": "SUCCESS", "result": RESULT}, "t-1", TaskStatus.READY),
        ({"id": "t-2", "status": "Ready", "result": RESULT, "progress": None}, "t-2", "Ready"),
        ({"task_id": "t-3", "status": "processing"}, "t-3", TaskStatus.PENDING),
        (
            {"task_id": "t-4", "status": "Content Moderated", "result": None},
            "t-4",
            "Content Moderated",
        ),
        ({"id": "t-5", "task_id": "t-5", "status": "FAILED"}, "t-5", TaskStatus.ERROR),
        ({"status": "SUCCESS"}, None, TaskStatus.READY),
        ({"task_id": "t-6", "status": "Something New"}, "t-6", None),
    ],
)
def test_both_shapes(document, task_id, status):
    report = parse_callback(json.dumps(document).encode())
    assert report == CallbackReport(task_id, TaskStatus(status) if status else None)


def test_is_final():
    assert parse_callback(b'{"status": "SUCCESS"}').is_final
    assert parse_callback(b'{"status": "FAILED"}').is_final
    assert not parse_callback(b'{"status": "processing"}').is_final
    assert not parse_callback(b'{"status": "brand new word"}').is_final


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'"SUCCESS"',
        b"\xff\xfe\x00garbage",
        b'{"task_id": 12, "status": "SUCCESS"}',  # ids are strings
        b'{"task_id": ["a"], "status": "SUCCESS"}',
        b'{"task_id": "", "status": "SUCCESS"}',
        b'{"task_id": "a/../b", "status": "SUCCESS"}',  # would land in a polling URL
        b'{"task_id": "a&id=b", "status": "SUCCESS"}',
        b'{"task_id": "\\ud800", "status": "SUCCESS"}',  # a lone surrogate
        b'{"task_id": "a", "id": "b", "status": "SUCCESS"}',  # two different ids
        b'{"task_id": "a"}',  # no status
        b'{"task_id": "a", "status": 1}',
        b'{"task_id": "a", "status": "SUCCESS", "result": "https://x"}',
        b'{"status": "SUCCESS", "seed": NaN}',
        b'{"status": "SUCCESS", "seed": Infinity}',
        b'{"status": "SUCCESS", "seed": 1e999}',
        '{"status": "SUCCESS"}'.encode("utf-16"),  # JSON between systems is UTF-8
        b'\xef\xbb\xbf{"status": "SUCCESS"}',  # ... with no byte order mark
    ],
)
def test_malformed_bodies(body):
    with pytest.raises(MalformedCallback):
        parse_callback(body)


def test_long_task_id_is_refused():
    body = json.dumps({"task_id": "a" * (MAX_TASK_ID_CHARS + 1), "status": "Ready"})
    with pytest.raises(MalformedCallback):
        parse_callback(body.encode())


@pytest.mark.parametrize("opening", [b"[", b'{"a":'])
def test_deep_nesting_is_refused_before_json_recurses(opening):
    # Far past the interpreter's recursion limit: refused by the scan, not a RecursionError.
    deep = opening * (sys.getrecursionlimit() * 50)
    with pytest.raises(MalformedCallback, match="nests deeper"):
        parse_callback(b'{"status": "Ready", "x": ' + deep)


def test_nesting_up_to_the_limit_is_fine_and_brackets_in_strings_do_not_count():
    nested = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    body = '{"status": "Ready", "x": ' + nested + ', "y": "' + "[{" * 1000 + '"}'
    assert parse_callback(body.encode()).status is TaskStatus.READY
    too_deep = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    with pytest.raises(MalformedCallback):
        parse_callback(('{"status": "Ready", "x": ' + too_deep + "}").encode())


def test_huge_integers_are_refused_whatever_the_interpreter_limit():
    body = b'{"status": "Ready", "seed": ' + b"9" * 4000 + b"}"
    previous = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)  # no interpreter limit: the parser's own bound must hold
    try:
        with pytest.raises(MalformedCallback, match="number"):
            parse_callback(body)
    finally:
        sys.set_int_max_str_digits(previous)
    with pytest.raises(MalformedCallback):
        parse_callback(b'{"status": "Ready", "seed": ' + b"9" * 100_000 + b"}")


def test_unterminated_escapes_scan_in_linear_time():
    # A regex that restarted at every quote would take minutes on this.
    with pytest.raises(MalformedCallback):
        parse_callback(b'"' + b'\\"' * 120_000)


# -- properties ---------------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=4096))
def test_any_bytes_give_a_report_or_malformed_and_nothing_else(body):
    result = parse_or_refuse(body)
    assert result is None or isinstance(result, CallbackReport)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_document_gives_a_report_or_malformed(document):
    result = parse_or_refuse(json.dumps(document).encode())
    assert result is None or isinstance(result, CallbackReport)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='[]{}",:\\ 0123456789ae-', max_size=300))
def test_bracket_soup_gives_a_report_or_malformed(text):
    result = parse_or_refuse(text.encode())
    assert result is None or isinstance(result, CallbackReport)


def shallow_json(depth: int = 4) -> st.SearchStrategy[object]:
    """JSON values nested at most `depth` levels (well inside the parser's bound)."""
    values: st.SearchStrategy[object] = st.none() | st.integers() | st.text(max_size=10)
    for _ in range(depth):
        values = (
            values
            | st.lists(values, max_size=3)
            | st.dictionaries(st.text(max_size=6), values, max_size=3)
        )
    return values


task_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,60}", fullmatch=True)
# Keys the parser reads are left out of the extras so they cannot clash.
extras = st.dictionaries(
    st.text(max_size=10).filter(lambda key: key not in ("id", "task_id", "status", "result")),
    shallow_json(),
    max_size=5,
)


@settings(max_examples=300, deadline=None)
@given(
    task_id=task_ids,
    word=st.sampled_from(sorted(WORDS)),
    shape=st.sampled_from(["task_id", "id"]),
    casing=st.sampled_from([str, str.lower, str.upper]),
    result=st.none() | st.just(RESULT) | st.dictionaries(st.text(max_size=8), shallow_json()),
    extra=extras,
)
def test_valid_documents_of_both_shapes_round_trip(task_id, word, shape, casing, result, extra):
    document = {**extra, shape: task_id, "status": casing(word), "result": result}
    report = parse_callback(json.dumps(document).encode())
    assert report == CallbackReport(task_id=task_id, status=WORDS[word])
    assert report.is_final == (WORDS[word] is not TaskStatus.PENDING)
