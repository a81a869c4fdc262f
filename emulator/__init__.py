"""A local, faithful emulator of the Black Forest Labs FLUX.1 Fill [pro] API.

It does real work (classical inpainting plus a style learned by local "finetunes"),
charges credits, enforces the active-task limit, serves results from signed, expiring
URLs and reports finished tasks to webhooks. `emulator.app.create_app(config)` builds
the Starlette app; `fillpipe emulator` runs it under uvicorn.

Served paths: the API under `/v1/...` (`x-key` header) and again under `/flux/v1/...`
(CometAPI flavour, `Authorization: Bearer <key>`): `flux-pro-1.0-fill-finetuned`,
`flux-pro-1.0-fill`, `get_result`, `finetune`, `finetune_details`, `my_finetunes`,
`delete_finetune`, `credits`; plus `/delivery/<task_id>/sample.<ext>` (signed result
downloads), `/admin/stats` (header `x-admin-token`) and `/healthz`.

Choices where the provider is silent: a fill costs 5 credits per output megapixel,
a finetuned fill 8, rounded up to 0.01 credit; training is free. `get_result` for an
unknown or expired id answers HTTP 200 with status `Task not found`. Without a mask,
transparent pixels (alpha < 128) are repainted; with one, mask pixels >= 128.

Configuration (`emulator.config.EmulatorConfig.from_environ`), one variable per knob:

    FILLPIPE_EMULATOR_API_KEYS                 accepted keys, comma-separated; empty
                                               accepts any non-empty key (default empty)
    FILLPIPE_EMULATOR_INITIAL_CREDITS          credits each key starts with (1000)
    FILLPIPE_EMULATOR_MAX_ACTIVE_TASKS         Pending tasks allowed per key, else 429 (24)
    FILLPIPE_EMULATOR_LATENCY_BASE_S           seconds a task stays Pending at least (0.5)
    FILLPIPE_EMULATOR_LATENCY_PER_MP_S         extra seconds per megapixel (0.5)
    FILLPIPE_EMULATOR_LATENCY_JITTER_S         uniform jitter, +/- seconds (0.1)
    FILLPIPE_EMULATOR_DELIVERY_TTL_S           lifetime of a signed result URL (600)
    FILLPIPE_EMULATOR_TASK_TTL_S               after this, get_result says
                                               `Task not found` (3600)
    FILLPIPE_EMULATOR_PUBLIC_URL               base URL for polling and result URLs
                                               (default: the request's own base URL)
    FILLPIPE_EMULATOR_DELIVERY_SIGNING_KEY     HMAC key for result URLs (random per start)
    FILLPIPE_EMULATOR_WEBHOOK_HMAC             also send X-BFL-Signature (false)
    FILLPIPE_EMULATOR_WEBHOOK_SHAPE            `bfl` ({"task_id", "status": "SUCCESS"…})
                                               or `result` (get_result's body) (bfl)
    FILLPIPE_EMULATOR_WEBHOOK_RETRIES          retries after a failed delivery (3)
    FILLPIPE_EMULATOR_WEBHOOK_RETRY_BACKOFF_S  first retry delay, doubling (0.5)
    FILLPIPE_EMULATOR_WORKER_THREADS           threads for image work (2)
    FILLPIPE_EMULATOR_ADMIN_TOKEN              token for /admin/*; empty disables (empty)

Booleans accept true/false, yes/no, on/off, 1/0. A malformed value raises `ValueError`
naming its variable.
"""
