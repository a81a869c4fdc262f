"""The domain's values: edit parameters, job identity, job records and their states."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pipeline.accounts import DEFAULT_ACCOUNT
from pipeline.states import JobState

# The provider bills in credits: 1 credit = $0.01.
CREDITS_PER_USD = 100
OutputFormat = Literal["jpeg", "png"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("jpeg", "png")
EXTENSIONS: dict[str, str] = {"jpeg": "jpg", "png": "png"}
CONTENT_TYPES: dict[str, str] = {"jpeg": "image/jpeg", "png": "image/png"}


@dataclass(frozen=True)
class Range:
    """An inclusive numeric range the provider enforces."""

    low: float
    high: float

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int | float) and self.low <= value <= self.high


# The provider's ranges and defaults (docs/provider.md, "Submitting").
FINETUNE_STRENGTH = Range(0, 2)
STEPS = Range(15, 50)
GUIDANCE = Range(1.5, 100)
SAFETY_TOLERANCE = Range(0, 6)
# The provider only says "integer"; a non-negative 64-bit seed is fillpipe's (choice).
SEED = Range(0, 2**63 - 1)


@dataclass(frozen=True)
class EditParams:
    """The provider parameters of one edit, already validated (see `validation`)."""

    prompt: str
    finetune_id: str
    finetune_strength: float = 1.1
    steps: int = 50
    guidance: float = 60.0
    seed: int | None = None
    output_format: OutputFormat = "jpeg"
    safety_tolerance: int = 2
    prompt_upsampling: bool = False

    def to_request(self) -> dict[str, Any]:
        """The JSON fields of the provider's submit body (images and webhook added later)."""
        body = asdict(self)
        if self.seed is None:
            del body["seed"]
        return body

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.output_format]

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.output_format]


CompositeMode = Literal["paste", "none"]
COMPOSITE_MODES: tuple[CompositeMode, ...] = ("paste", "none")
FEATHER_PX = Range(0, 64)


@dataclass(frozen=True)
class CompositeOptions:
    """How the provider's result becomes the output: laid over the source through the
    mask, its colour matched to the source around the mask and blended `feather_px`
    inside the mask's edge ("paste"), or stored as the provider delivered it ("none")."""

    mode: CompositeMode = "paste"
    feather_px: int = 4
    color_match: bool = True

    def __post_init__(self) -> None:
        if self.mode not in COMPOSITE_MODES:
            raise ValueError(f"composite mode must be one of {COMPOSITE_MODES}, not {self.mode!r}")
        if self.feather_px not in FEATHER_PX:
            raise ValueError(f"feather_px must be 0..{FEATHER_PX.high:g}, not {self.feather_px}")


@dataclass(frozen=True)
class QaLimits:
    """Past these, a stored output is flagged for a look (never failed): how far the
    provider's image strayed from the source outside the mask (99th percentile of the
    absolute difference), and the seam left after compositing, both in 0-255 units."""

    drift_p99_max: float = 48.0
    seam_max: float = 4.0


@dataclass(frozen=True)
class CompositeChoice:
    """What a manifest row or trigger rule says of compositing; None: the default."""

    mode: CompositeMode | None = None
    feather_px: int | None = None
    color_match: bool | None = None

    def over(self, defaults: CompositeOptions) -> CompositeOptions:
        """These choices, the defaults for what they leave out."""
        return CompositeOptions(
            mode=defaults.mode if self.mode is None else self.mode,
            feather_px=defaults.feather_px if self.feather_px is None else self.feather_px,
            color_match=defaults.color_match if self.color_match is None else self.color_match,
        )


@dataclass(frozen=True, order=True)
class JobRef:
    """Names one job: its batch and its id within the batch."""

    batch_id: str
    job_id: str

    def __str__(self) -> str:
        return f"{self.batch_id}/{self.job_id}"


@dataclass(frozen=True)
class JobSpec:
    """What the user asked for: inputs, parameters, output place and extra tags."""

    ref: JobRef
    image_uri: str
    mask_uri: str | None
    output_uri: str
    params: EditParams
    tags: dict[str, str] = field(default_factory=dict)
    # `inputs_digest` of the image and mask that `fillpipe submit` decoded in full; the
    # submit task skips decoding the same bytes again. None: the task checks them fully.
    checked_inputs: str | None = None
    # How a triggered job came to be: its rule, the event's origin, the object's ETag.
    origin: dict[str, str] = field(default_factory=dict)
    # The provider account it runs on (its slot pool), decided at intake.
    account: str = DEFAULT_ACCOUNT
    # How its output is made from the provider's result, decided at intake.
    composite: CompositeOptions = field(default_factory=CompositeOptions)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        data = json.loads(text)
        return cls(
            ref=JobRef(**data["ref"]),
            image_uri=data["image_uri"],
            mask_uri=data["mask_uri"],
            output_uri=data["output_uri"],
            params=EditParams(**data["params"]),
            tags=dict(data["tags"]),
            checked_inputs=data.get("checked_inputs"),
            origin=dict(data.get("origin") or {}),
            account=data.get("account") or DEFAULT_ACCOUNT,
            composite=CompositeOptions(**data.get("composite") or {}),
        )


@dataclass(frozen=True)
class JobRecord:
    """A job as the ledger holds it: the spec and where it stands."""

    spec: JobSpec
    state: JobState
    attempt: int
    provider_task_id: str | None = None
    polling_url: str | None = None
    cost_credits: float | None = None
    error: str | None = None
    seed: int | None = None
    updated_at: float = 0.0
    # Times in a row its inputs could not be read (S3 trouble that may pass).
    input_troubles: int = 0
    # How its stored output came out (`pipeline.compositing.Quality.as_json`, `flagged`).
    qa: dict[str, Any] | None = None

    @property
    def ref(self) -> JobRef:
        return self.spec.ref

    @property
    def account(self) -> str:
        return self.spec.account
