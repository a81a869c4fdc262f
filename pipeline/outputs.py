"""From the provider's result to the output fillpipe stores, with its QA figures.

The result is laid over the job's own source through its mask with local colour
matching (`pipeline.compositing`): the inputs its submit sent, kept in this process
(`pipeline.sent_inputs`), else read again from S3. A job may ask for the provider's
image as delivered instead (`composite: none`). Either way the result's
drift from the source outside the mask and the seam are measured; an output past the
limits (`FILLPIPE_QA_DRIFT_MAX`, `FILLPIPE_QA_SEAM_MAX`) is flagged, never failed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pipeline.compositing import finish
from pipeline.models import CONTENT_TYPES, JobRecord, QaLimits
from pipeline.runtime import Runtime
from pipeline.submit import read_inputs

_FORMAT_TYPES = {"JPEG": CONTENT_TYPES["jpeg"], "PNG": CONTENT_TYPES["png"], "WEBP": "image/webp"}


@dataclass(frozen=True)
class Output:
    """The bytes to store, their content type, and the QA figures (`flagged` included)."""

    data: bytes
    content_type: str
    qa: dict[str, Any]

    @property
    def qa_json(self) -> str:
        return json.dumps(self.qa, sort_keys=True)

    def metadata(self) -> dict[str, str]:
        """The QA figures as S3 metadata (`qa-drift-mean`, ...)."""
        return {f"qa-{name.replace('_', '-')}": _text(value) for name, value in self.qa.items()}


def make_output(rt: Runtime, record: JobRecord, result: bytes) -> Output:
    """The output of the job from the provider's `result` (`InputError` when the job's
    inputs or the result cannot be read as images)."""
    spec = record.spec
    source, mask = rt.sent_inputs.take(record.ref) or read_inputs(rt, spec)
    finished = finish(
        source, mask, result, options=spec.composite, output_format=spec.params.output_format
    )
    qa = finished.quality.as_json()
    qa["flagged"] = flagged(qa, rt.settings.qa_limits)
    content_type = _FORMAT_TYPES.get(finished.format, spec.params.content_type)
    return Output(finished.data, content_type, qa)


def flagged(qa: dict[str, Any], limits: QaLimits) -> bool:
    """Whether the provider strayed too far outside the mask, or a seam shows."""
    return bool(qa["drift_p99"] > limits.drift_p99_max or qa["seam"] > limits.seam_max)


def _text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
