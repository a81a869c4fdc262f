import pytest

from emulator.account_limits import AccountLimits
from emulator.config import EmulatorConfig, env_name
from emulator.rendering import Rendering

pytestmark = pytest.mark.timeout(30)

ACCOUNTS = "FILLPIPE_EMULATOR_ACCOUNTS"
SECRET_KEY = "sk-very-secret"


def test_defaults_match_the_provider() -> None:
    config = EmulatorConfig()

    assert config.api_keys == ()
    assert config.initial_credits == 1000.0
    assert config.max_active_tasks == 24
    assert (config.latency_base_s, config.latency_per_mp_s, config.latency_jitter_s) == (
        0.5,
        0.5,
        0.1,
    )
    assert (config.delivery_ttl_s, config.task_ttl_s) == (600, 3600)
    assert config.public_url is None
    assert config.webhook_shape == "bfl"
    assert not config.webhook_hmac
    assert (config.webhook_retries, config.webhook_retry_backoff_s) == (3, 0.5)
    assert config.worker_threads == 2
    assert config.admin_token == ""
    assert config.seed is None
    assert config.accounts == {}
    assert config.withdrawn == ()
    assert (config.drift, config.result_scale) == (True, 1.0)
    assert config.rendering == Rendering(drift=True, result_scale=1.0)


def test_each_start_gets_its_own_signing_key() -> None:
    assert EmulatorConfig().delivery_signing_key != EmulatorConfig().delivery_signing_key


def test_reads_every_kind_of_variable() -> None:
    config = EmulatorConfig.from_environ(
        {
            "FILLPIPE_EMULATOR_API_KEYS": " key-a, key-b ,,",
            "FILLPIPE_EMULATOR_INITIAL_CREDITS": "12.5",
            "FILLPIPE_EMULATOR_MAX_ACTIVE_TASKS": "6",
            "FILLPIPE_EMULATOR_LATENCY_BASE_S": "0",
            "FILLPIPE_EMULATOR_PUBLIC_URL": "http://127.0.0.1:9000",
            "FILLPIPE_EMULATOR_DELIVERY_SIGNING_KEY": "s3cret",
            "FILLPIPE_EMULATOR_WEBHOOK_HMAC": "Yes",
            "FILLPIPE_EMULATOR_WEBHOOK_SHAPE": "result",
            "FILLPIPE_EMULATOR_ADMIN_TOKEN": "adm",
            "FILLPIPE_EMULATOR_SEED": "7",
            "UNRELATED": "ignored",
        }
    )

    assert config.api_keys == ("key-a", "key-b")
    assert config.initial_credits == 12.5
    assert config.max_active_tasks == 6
    assert config.latency_base_s == 0.0
    assert config.public_url == "http://127.0.0.1:9000"
    assert config.delivery_signing_key == "s3cret"
    assert config.webhook_hmac is True
    assert config.webhook_shape == "result"
    assert config.admin_token == "adm"
    assert config.seed == 7


def test_an_empty_public_url_means_none() -> None:
    assert EmulatorConfig.from_environ({"FILLPIPE_EMULATOR_PUBLIC_URL": ""}).public_url is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FILLPIPE_EMULATOR_LATENCY_BASE_S", "fast"),
        ("FILLPIPE_EMULATOR_MAX_ACTIVE_TASKS", "2.5"),
        ("FILLPIPE_EMULATOR_WEBHOOK_HMAC", "maybe"),
        ("FILLPIPE_EMULATOR_LATENCY_JITTER_S", "-1"),
        ("FILLPIPE_EMULATOR_WORKER_THREADS", "0"),
        ("FILLPIPE_EMULATOR_WEBHOOK_SHAPE", "xml"),
        ("FILLPIPE_EMULATOR_DELIVERY_SIGNING_KEY", ""),
        ("FILLPIPE_EMULATOR_SEED", "0.5"),
        ("FILLPIPE_EMULATOR_DRIFT", "sometimes"),
        ("FILLPIPE_EMULATOR_RESULT_SCALE", "big"),
        ("FILLPIPE_EMULATOR_RESULT_SCALE", "5"),
        ("FILLPIPE_EMULATOR_RESULT_SCALE", "0.2"),
        ("FILLPIPE_EMULATOR_RESULT_SCALE", "nan"),
    ],
)
def test_a_malformed_value_is_refused_naming_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=variable):
        EmulatorConfig.from_environ({variable: value})


@pytest.mark.parametrize(
    ("drift", "expected"),
    [("off", False), ("false", False), ("0", False), ("on", True), ("TRUE", True), ("1", True)],
)
def test_reads_the_rendering(drift: str, expected: bool) -> None:
    config = EmulatorConfig.from_environ(
        {"FILLPIPE_EMULATOR_DRIFT": drift, "FILLPIPE_EMULATOR_RESULT_SCALE": "0.25"}
    )

    assert config.rendering == Rendering(drift=expected, result_scale=0.25)


def test_env_names_follow_the_field_names() -> None:
    assert env_name("latency_base_s") == "FILLPIPE_EMULATOR_LATENCY_BASE_S"


def test_repr_hides_the_secrets() -> None:
    config = EmulatorConfig(
        api_keys=("key-a",), delivery_signing_key="s3cret", admin_token="adm-token"
    )

    shown = repr(config)

    assert "key-a" not in shown
    assert "s3cret" not in shown
    assert "adm-token" not in shown
    assert "latency_base_s=0.5" in shown


def test_reads_accounts_and_withdrawn_endpoints() -> None:
    config = EmulatorConfig.from_environ(
        {
            ACCOUNTS: '{"key-a": {"slots": 3, "credits": 100}, "key-b": {"slots": 5}, '
            '"key-c": {"credits": null}}',
            "FILLPIPE_EMULATOR_WITHDRAWN": "finetune, credits",
        }
    )

    assert config.accounts == {
        "key-a": AccountLimits(slots=3, credits=100),
        "key-b": AccountLimits(slots=5),
        "key-c": AccountLimits(),
    }
    assert config.withdrawn == ("finetune", "credits")


def test_an_account_falls_back_to_the_defaults_for_what_it_leaves_out() -> None:
    config = EmulatorConfig(
        initial_credits=7,
        max_active_tasks=9,
        accounts={"key-a": AccountLimits(slots=3), "key-b": AccountLimits(credits=0)},
    )

    assert config.limits("key-a") == (3, 7)
    assert config.limits("key-b") == (9, 0)
    assert config.limits("key-z") == (9, 7)


@pytest.mark.parametrize("value", ["", "  ", "{}"])
def test_empty_accounts_mean_none(value: str) -> None:
    assert EmulatorConfig.from_environ({ACCOUNTS: value}).accounts == {}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("{", "not valid JSON"),
        ("[]", "not a JSON object"),
        (f'{{"{SECRET_KEY}": 3}}', "account #1: its limits must be a JSON object"),
        (f'{{"{SECRET_KEY}": {{"slot": 3}}}}', "unknown field(s) slot"),
        (f'{{"a": {{}}, "{SECRET_KEY}": {{"slots": 0}}}}', "account #2: slots"),
        (f'{{"{SECRET_KEY}": {{"slots": 2.5}}}}', "slots"),
        (f'{{"{SECRET_KEY}": {{"slots": true}}}}', "slots"),
        (f'{{"{SECRET_KEY}": {{"credits": -1}}}}', "credits"),
        (f'{{"{SECRET_KEY}": {{"credits": "5"}}}}', "credits"),
        (f'{{"{SECRET_KEY}": {{"credits": NaN}}}}', "NaN"),
        ('{"": {"slots": 1}}', "must not be empty"),
    ],
)
def test_bad_accounts_are_refused_naming_the_variable_but_no_key(value: str, problem: str) -> None:
    with pytest.raises(ValueError, match=ACCOUNTS) as refused:
        EmulatorConfig.from_environ({ACCOUNTS: value})

    assert problem in str(refused.value)
    assert SECRET_KEY not in str(refused.value)


def test_bad_account_limits_are_refused_when_built_directly() -> None:
    with pytest.raises(ValueError, match="slots"):
        AccountLimits(slots=0)
    with pytest.raises(ValueError, match=ACCOUNTS):
        EmulatorConfig(accounts={"": AccountLimits()})


def test_an_unknown_withdrawn_endpoint_is_refused_naming_the_variable() -> None:
    with pytest.raises(ValueError, match="FILLPIPE_EMULATOR_WITHDRAWN") as refused:
        EmulatorConfig.from_environ({"FILLPIPE_EMULATOR_WITHDRAWN": "credits,fill"})

    assert "fill" in str(refused.value)


def test_repr_hides_the_account_keys() -> None:
    config = EmulatorConfig(accounts={SECRET_KEY: AccountLimits(slots=3)})

    assert SECRET_KEY not in repr(config)


def test_accounts_cannot_be_changed_after_the_start() -> None:
    given = {"key-a": AccountLimits(slots=3)}
    config = EmulatorConfig(accounts=given)
    given["key-b"] = AccountLimits()

    assert list(config.accounts) == ["key-a"]
    with pytest.raises(TypeError):
        config.accounts["key-c"] = AccountLimits()  # type: ignore[index]
