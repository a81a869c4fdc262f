"""The provider's request bodies and query strings, field by field (docs/provider.md)."""

from __future__ import annotations

from emulator.validation import Field, Kind

OUTPUT_FORMATS = ("jpeg", "png", "webp")
FINETUNE_MODES = ("general", "character", "style", "product")
FINETUNE_PRIORITIES = ("speed", "quality", "high_res_only")
FINETUNE_TYPES = ("full", "lora")
LORA_RANKS = (16, 32)
WEBHOOK_URL_MAX_CHARS = 2083

WEBHOOK_FIELDS = (
    Field("webhook_url", Kind.URL, default=None, nullable=True, max_length=WEBHOOK_URL_MAX_CHARS),
    Field("webhook_secret", Kind.STRING, default=None, nullable=True),
)

# POST /v1/flux-pro-1.0-fill
FILL_FIELDS = (
    Field("image", Kind.STRING),
    Field("mask", Kind.STRING, default=None, nullable=True),
    Field("prompt", Kind.STRING, default=""),
    Field("steps", Kind.INTEGER, default=50, ge=15, le=50),
    Field("guidance", Kind.NUMBER, default=60, ge=1.5, le=100),
    Field("prompt_upsampling", Kind.BOOLEAN, default=False),
    Field("seed", Kind.INTEGER, default=None, nullable=True),
    Field("output_format", Kind.STRING, default="jpeg", choices=OUTPUT_FORMATS),
    Field("safety_tolerance", Kind.INTEGER, default=2, ge=0, le=6),
    *WEBHOOK_FIELDS,
)

# POST /v1/flux-pro-1.0-fill-finetuned
FINETUNED_FILL_FIELDS = (
    Field("finetune_id", Kind.STRING),
    Field("finetune_strength", Kind.NUMBER, default=1.1, ge=0, le=2),
    *FILL_FIELDS,
)

# POST /v1/finetune: the training settings, reported back by finetune_details
FINETUNE_SETTING_FIELDS = (
    Field("finetune_comment", Kind.STRING),
    Field("mode", Kind.STRING, choices=FINETUNE_MODES),
    Field("trigger_word", Kind.STRING, default="TOK"),
    Field("iterations", Kind.INTEGER, default=300, ge=100, le=1000),
    Field("learning_rate", Kind.NUMBER, default=None, nullable=True, ge=0.000001, le=0.005),
    Field("captioning", Kind.BOOLEAN, default=True),
    Field("priority", Kind.STRING, default="quality", choices=FINETUNE_PRIORITIES),
    Field("finetune_type", Kind.STRING, default="full", choices=FINETUNE_TYPES),
    Field("lora_rank", Kind.INTEGER, default=32, choices=LORA_RANKS),
)
FINETUNE_FIELDS = (Field("file_data", Kind.STRING), *FINETUNE_SETTING_FIELDS, *WEBHOOK_FIELDS)

# POST /v1/delete_finetune, and the query of GET /v1/finetune_details
FINETUNE_ID_FIELDS = (Field("finetune_id", Kind.STRING),)

# GET /v1/get_result
RESULT_QUERY_FIELDS = (Field("id", Kind.STRING),)

# POST /admin/expire
EXPIRE_FIELDS = (Field("task_id", Kind.STRING),)

# PUT /admin/accounts/credits
ACCOUNT_CREDITS_FIELDS = (Field("key", Kind.STRING), Field("credits", Kind.NUMBER, ge=0))
