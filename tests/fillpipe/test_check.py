"""`fillpipe check` as a user runs it, against the embedded stack: all ok, or exit 1 with
the broken part named on its line while every other check still runs."""

from __future__ import annotations

import json

import pytest

from fillpipe.ports import free_ports
from tests.commands import run_fillpipe

pytestmark = [pytest.mark.timeout(120), pytest.mark.integration]

CHECKS = ["settings", "account default", "s3", "redis", "signing", "callbacks"]


@pytest.fixture
def env(stack, clean_environ) -> dict[str, str]:
    """The environment of a shell that sourced the stack's stack.env."""
    return {**clean_environ, **stack.env}


def check(env: dict[str, str], *args: str):
    return run_fillpipe("check", "--timeout-s", "2", *args, env=env, timeout_s=60)


def lines_by_check(stdout: str, names: list[str] = CHECKS) -> dict[str, str]:
    """Each stdout line by its check's name (`FAIL  account default  …` → `account
    default`): lines are `STATUS  NAME  TEXT`, columns aligned."""
    found: dict[str, str] = {}
    for line in stdout.splitlines():
        name = next(name for name in names if line.split(None, 1)[1].startswith(name + " "))
        found[name] = line
    return found


def closed_port() -> int:
    (port,) = free_ports(1)
    return port


def assert_only_failure(result, failing: str) -> str:
    """Exit 1, every check ran, only `failing` failed; its line."""
    assert result.returncode == 1, result.stderr
    lines = lines_by_check(result.stdout)
    assert list(lines) == CHECKS
    for name, line in lines.items():
        assert line.startswith("FAIL " if name == failing else "ok "), line
    assert result.stderr.strip().endswith("6 checks: 5 ok, 1 FAIL")
    return lines[failing]


def test_every_check_passes_on_the_embedded_stack(env):
    result = check(env)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = lines_by_check(result.stdout)
    assert list(lines) == CHECKS
    assert all(line.startswith("ok ") for line in lines.values())
    assert f"callbacks via {env['FILLPIPE_PUBLIC_URL']}" in lines["callbacks"]
    assert "6 checks: 6 ok" in result.stderr
    for secret in ("FILLPIPE_PROVIDER_KEY", "FILLPIPE_SIGNING_KEY", "AWS_SECRET_ACCESS_KEY"):
        assert env[secret] not in result.stdout + result.stderr


def test_json_is_one_document(env):
    result = check(env, "--json")

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] is True
    assert [item["name"] for item in document["checks"]] == CHECKS
    assert {item["status"] for item in document["checks"]} == {"ok"}
    assert set(document["checks"][0]) == {"name", "status", "detail", "fix"}


def test_a_wrong_provider_key(env):
    wrong = "wrong-provider-key-0123456789"

    result = check({**env, "FILLPIPE_PROVIDER_KEY": wrong})

    line = assert_only_failure(result, "account default")
    assert "account default: provider refused the API key (403)" in line
    assert "FILLPIPE_PROVIDER_KEY" in line
    assert wrong not in result.stdout + result.stderr


def test_a_missing_bucket(env):
    result = check({**env, "FILLPIPE_BUCKET": "nosuchbucket"})

    line = assert_only_failure(result, "s3")
    assert "bucket nosuchbucket does not exist" in line
    assert line.endswith("create it or set FILLPIPE_BUCKET")


def test_redis_down(env):
    url = f"redis://127.0.0.1:{closed_port()}/0"

    result = check({**env, "FILLPIPE_REDIS_URL": url})

    line = assert_only_failure(result, "redis")
    assert f"Redis at {url} does not answer" in line
    assert "FILLPIPE_REDIS_URL" in line


def test_a_public_url_that_does_not_answer(env):
    url = f"http://127.0.0.1:{closed_port()}"

    result = check({**env, "FILLPIPE_PUBLIC_URL": url})

    line = assert_only_failure(result, "callbacks")
    assert f"{url}/healthz does not answer" in line
    assert "the provider could not call back" in line
    assert "FILLPIPE_CALLBACKS=off" in line


def test_polling_needs_no_public_url(env):
    result = check({**env, "FILLPIPE_CALLBACKS": "off"})

    assert result.returncode == 0, result.stdout
    assert "polling (FILLPIPE_CALLBACKS=off)" in lines_by_check(result.stdout)["callbacks"]


def test_each_account_of_an_accounts_file_is_checked(env, tmp_path):
    accounts_file = tmp_path / "accounts.toml"
    accounts_file.write_text(
        '[accounts.brand-a]\nkey_env = "BFL_KEY_A"\n\n'
        '[accounts.brand-b]\nflavor = "cometapi"\nkey_env = "COMET_KEY_B"\n'
    )
    wrong = "wrong-comet-key-0123456789"

    result = check(
        {
            **env,
            "FILLPIPE_ACCOUNTS_FILE": str(accounts_file),
            "BFL_KEY_A": env["FILLPIPE_PROVIDER_KEY"],
            "COMET_KEY_B": wrong,
        }
    )

    assert result.returncode == 1
    names = ["settings", "account brand-a", "account brand-b", *CHECKS[2:]]
    lines = lines_by_check(result.stdout, names)
    assert list(lines) == names
    assert lines["account brand-a"].startswith("ok ")
    assert "(bfl)" in lines["account brand-a"]
    failing = lines["account brand-b"]
    assert failing.startswith("FAIL ")
    assert "account brand-b: provider refused the API key (403)" in failing
    assert "the environment variable COMET_KEY_B" in failing
    assert wrong not in result.stdout + result.stderr


def test_invalid_settings_are_bad_usage(env):
    result = check({**env, "FILLPIPE_SIGNING_KEY": "too-short"})

    assert result.returncode == 2
    assert result.stdout == ""
    assert "FILLPIPE_SIGNING_KEY entry 1 is shorter than 32 characters" in result.stderr
    assert "too-short" not in result.stderr
