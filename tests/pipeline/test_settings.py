import pytest

from pipeline.errors import ConfigError
from pipeline.settings import Secret, Settings, redact_url

KEY = "k" * 40

BASE = {
    "FILLPIPE_REDIS_URL": "redis://:hunter2@127.0.0.1:6379/0",
    "FILLPIPE_PROVIDER_URL": "https://api.us1.bfl.ai/",
    "FILLPIPE_PROVIDER_KEY": "provider-key-value",
    "FILLPIPE_PUBLIC_URL": "https://hooks.example.com/",
    "FILLPIPE_SIGNING_KEY": f"{KEY}, {'o' * 40}",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-value",
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
}

pytestmark = pytest.mark.timeout(10)


def test_reads_every_setting_with_defaults():
    settings = Settings.from_environ(BASE)
    account = settings.accounts.default
    assert account.name == "default"
    assert account.base_url == "https://api.us1.bfl.ai"
    assert settings.public_url == "https://hooks.example.com"
    assert settings.bucket == "fillpipe"
    assert account.flavor == "bfl"
    assert account.slots == 24
    assert settings.result_hosts == ("*.bfl.ai",)
    assert [key.reveal() for key in settings.signing_keys] == [KEY, "o" * 40]
    assert account.key.reveal() == "provider-key-value"
    assert settings.callbacks is True


def test_repr_shows_no_secret():
    text = repr(Settings.from_environ(BASE)) + str(Settings.from_environ(BASE))
    for secret in ("hunter2", "provider-key-value", KEY, "aws-secret-value"):
        assert secret not in text
    assert "redis://:***@127.0.0.1:6379/0" in text


def test_every_problem_is_reported_at_once():
    env = {
        "FILLPIPE_PROVIDER_FLAVOR": "acme",
        "FILLPIPE_PROVIDER_SLOTS": "many",
        "FILLPIPE_SIGNING_KEY": "short",
    }
    with pytest.raises(ConfigError) as caught:
        Settings.from_environ(env)
    message = str(caught.value)
    for expected in (
        "FILLPIPE_REDIS_URL is not set",
        "FILLPIPE_PROVIDER_URL is not set",
        "FILLPIPE_PROVIDER_FLAVOR must be one of bfl, cometapi",
        "FILLPIPE_PROVIDER_SLOTS must be a whole number",
        "FILLPIPE_SIGNING_KEY entry 1 is shorter than 32",
    ):
        assert expected in message
    assert "short" not in message.replace("shorter", "")


def test_slots_below_one_rejected():
    with pytest.raises(ConfigError, match="at least 1"):
        Settings.from_environ({**BASE, "FILLPIPE_PROVIDER_SLOTS": "0"})


def test_cometapi_flavor_and_result_hosts():
    settings = Settings.from_environ(
        {
            **BASE,
            "FILLPIPE_PROVIDER_FLAVOR": "CometAPI",
            "FILLPIPE_RESULT_HOSTS": "*.bfl.ai, 127.0.0.1:9000",
        }
    )
    assert settings.accounts.default.flavor == "cometapi"
    assert settings.result_hosts == ("*.bfl.ai", "127.0.0.1:9000")


def test_secret_hides_itself_and_compares_by_value():
    secret = Secret("value")
    assert "value" not in repr(secret) and "value" not in str(secret)
    assert secret == Secret("value") and secret != Secret("other")
    assert f"{secret}" == str(secret)


def test_redact_url_keeps_urls_without_password():
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redact_url("redis://user:pw@host/0") == "redis://user:***@host/0"


def test_require_signature_defaults_to_false():
    assert Settings.from_environ(BASE).require_signature is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("on", True),
        ("false", False),
        ("0", False),
        ("No", False),
        ("off", False),
        ("  ", False),
    ],
)
def test_require_signature_is_read(value, expected):
    env = {**BASE, "FILLPIPE_REQUIRE_SIGNATURE": value}
    assert Settings.from_environ(env).require_signature is expected


def test_require_signature_must_be_a_boolean():
    env = {**BASE, "FILLPIPE_REQUIRE_SIGNATURE": "sometimes"}
    with pytest.raises(ConfigError, match="FILLPIPE_REQUIRE_SIGNATURE must be true or false"):
        Settings.from_environ(env)


def test_choices_are_read_in_any_case_and_wrong_ones_listed():
    settings = Settings.from_environ({**BASE, "FILLPIPE_ON_LOST_RESULT": "Resubmit"})
    assert settings.on_lost_result == "resubmit"
    assert Settings.from_environ(BASE).on_lost_result == "fail"
    with pytest.raises(ConfigError) as caught:
        Settings.from_environ({**BASE, "FILLPIPE_ON_LOST_RESULT": "Retry"})
    assert "FILLPIPE_ON_LOST_RESULT must be one of fail, resubmit, got 'retry'" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("PRICE_CREDITS_PER_MP", "cheap", "must be a number, got 'cheap'"),
        ("PRICE_CREDITS_PER_MP", "-1.5", "must be at least 0, got -1.5"),
        ("PRICE_CREDITS_PER_MP", "nan", "must be at least 0, got nan"),
        ("CALLBACK_LATE_S", "0.05", "must be at least 0.1, got 0.05"),
        ("RESULT_MAX_BYTES", "1.5", "must be a whole number, got '1.5'"),
        ("RESULT_MAX_BYTES", "100", "must be at least 1024, got 100"),
        ("PROVIDER_SLOTS", "0", "must be at least 1, got 0"),
    ],
)
def test_numbers_are_parsed_and_bounded(name, value, expected):
    with pytest.raises(ConfigError) as caught:
        Settings.from_environ({**BASE, f"FILLPIPE_{name}": value})
    assert f"FILLPIPE_{name} {expected}" in str(caught.value)


def test_numbers_in_range_are_read():
    env = {**BASE, "FILLPIPE_PRICE_CREDITS_PER_MP": "5.5", "FILLPIPE_RESULT_MAX_BYTES": "1024"}
    settings = Settings.from_environ(env)
    assert (settings.price_credits_per_mp, settings.result_max_bytes) == (5.5, 1024)
