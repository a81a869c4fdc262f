import pytest

from emulator.config import EmulatorConfig, env_name


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
    ],
)
def test_a_malformed_value_is_refused_naming_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=variable):
        EmulatorConfig.from_environ({variable: value})


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
