"""A local, faithful emulator of the Black Forest Labs FLUX.1 Fill [pro] API.

It does real work (classical inpainting plus a style learned by local "finetunes"),
charges credits, enforces the active-task limit, serves results from signed, expiring
URLs and reports finished tasks to webhooks. `emulator.app.create_app(config)` builds
the Starlette app; `fillpipe emulator` runs it under uvicorn.

Served paths: the API under `/v1/...` (`x-key` header) and again under `/flux/v1/...`
(CometAPI flavour, `Authorization: Bearer <key>`): `flux-pro-1.0-fill-finetuned`,
`flux-pro-1.0-fill`, `get_result`, `finetune`, `finetune_details`, `my_finetunes`,
`delete_finetune`, `credits`; plus `/delivery/<task_id>/sample.<ext>` (signed result
downloads), `/healthz`, and the admin API (header `x-admin-token`): `GET /admin/stats`,
`GET /admin/tasks`, `GET`/`PUT /admin/faults` (partial JSON update, 422 listing bad
fields), `POST /admin/expire {"task_id"}` (the task then reads `Task not found`) and
`PUT /admin/accounts/credits {"key", "credits"}` (sets that key's balance) and
`GET`/`PUT /admin/rendering` (`{"drift", "result_scale"}` of fills submitted from then on).

Choices where the provider is silent: a fill costs 5 credits per output megapixel,
a finetuned fill 8, rounded up to 0.01 credit; training is free. `get_result` for an
unknown or expired id answers HTTP 200 with status `Task not found`. Without a mask,
transparent pixels (alpha < 128) are repainted; with one, mask pixels >= 128.
A moderated submit answers 200 with an id and cost 0; get_result then says
`Request Moderated` (or, after processing, `Content Moderated`), `result: null`,
`details: {"Moderation Reasons": [...]}`; the webhook reports the same status.

Configuration (`emulator.config.EmulatorConfig.from_environ`), one variable per knob:

    FILLPIPE_EMULATOR_API_KEYS                 accepted keys, comma-separated; with ACCOUNTS'
                                               keys; both empty accepts any non-empty key
    FILLPIPE_EMULATOR_ACCOUNTS                 JSON: key -> {"slots", "credits"}, each key's
                                               own limits; one left out is the default (empty)
    FILLPIPE_EMULATOR_INITIAL_CREDITS          credits each key starts with (1000)
    FILLPIPE_EMULATOR_MAX_ACTIVE_TASKS         Pending tasks allowed per key, else 429 (24)
    FILLPIPE_EMULATOR_WITHDRAWN                endpoints answered 404 in both flavours,
                                               comma-separated: finetune, finetune_details,
                                               my_finetunes, delete_finetune, credits (empty)
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
    FILLPIPE_EMULATOR_WORKER_THREADS           threads for the tasks' image work (2); request
                                               bodies are decoded on two threads of their own
    FILLPIPE_EMULATOR_ADMIN_TOKEN              token for /admin/*; empty disables (empty)
    FILLPIPE_EMULATOR_SEED                     integer: seeds the latency draws and the seeds
                                               of submits without one, so runs repeat
                                               (empty: fresh entropy)
    FILLPIPE_EMULATOR_MODERATION_WORDS         words (whole, any case) in a prompt that make
                                               it `Request Moderated`, comma-separated (empty)
    FILLPIPE_EMULATOR_CONTENT_MODERATION_WORD  a word (whole, any case) in a prompt that makes
                                               the result `Content Moderated` (empty: none)
    FILLPIPE_EMULATOR_DRIFT                    re-encode whole results as the provider's VAE
                                               does: smooth colour drift and a slight blur on
                                               every pixel, kept ones included (on)
    FILLPIPE_EMULATOR_RESULT_SCALE             results are this many times the input's size,
                                               0.25..4 (1.0)

Faults (`emulator.faults`), off by default, switchable at run time by `PUT /admin/faults`
with the same names in lower case without the prefix (`{"webhook_drop": 0.5}`). Each is
a probability 0..1 unless it ends in `_s` (seconds, 0..3600):

    FILLPIPE_EMULATOR_FAULT_WEBHOOK_DROP                 never send the webhook
    FILLPIPE_EMULATOR_FAULT_WEBHOOK_DUPLICATE            send it twice
    FILLPIPE_EMULATOR_FAULT_WEBHOOK_DELAY_S              extra wait before sending (0) …
    FILLPIPE_EMULATOR_FAULT_WEBHOOK_DELAY_PROBABILITY    … applied with this probability
    FILLPIPE_EMULATOR_FAULT_WEBHOOK_REORDER              hold it until the next webhook
                                                         has been sent
    FILLPIPE_EMULATOR_FAULT_SUBMIT_429                   429 + Retry-After, no task
    FILLPIPE_EMULATOR_FAULT_SUBMIT_500                   500, no task
    FILLPIPE_EMULATOR_FAULT_SUBMIT_500_AFTER_CREATE      task created and charged, then 500
    FILLPIPE_EMULATOR_FAULT_GET_RESULT_500               get_result answers 500
    FILLPIPE_EMULATOR_FAULT_GET_RESULT_SLOW_S            extra wait before get_result (0) …
    FILLPIPE_EMULATOR_FAULT_GET_RESULT_SLOW_PROBABILITY  … applied with this probability
    FILLPIPE_EMULATOR_FAULT_DELIVERY_FAIL                the result download answers 500
    FILLPIPE_EMULATOR_FAULT_DELIVERY_TRUNCATE            half the bytes, full Content-Length
    FILLPIPE_EMULATOR_FAULT_EXPIRE_TASKS                 get_result first forgets the task,
                                                         which then reads `Task not found`
    FILLPIPE_EMULATOR_FAULT_SEED                         integer: each fault kind draws from
                                                         its own RNG seeded from it, so runs
                                                         repeat (empty: fresh entropy); a
                                                         `seed` in a PUT restarts the draws

Booleans accept true/false, yes/no, on/off, 1/0. A malformed value raises `ValueError`
naming its variable.
"""
