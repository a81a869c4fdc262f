"""The command line as a user meets it: help texts, exit codes, clear errors."""

import pytest
from click.testing import CliRunner

from fillpipe.cli import main
from tests.commands import run_fillpipe

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_subcommand_explains_itself(command):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert f"Usage: main {command}" in result.output
    assert len(main.commands[command].help or "") > 20


def test_missing_settings_are_bad_usage_with_a_clear_message(clean_environ):
    result = CliRunner().invoke(
        main,
        ["status", "b1"],
        env=dict.fromkeys(
            [
                "FILLPIPE_REDIS_URL",
                "FILLPIPE_PROVIDER_URL",
                "FILLPIPE_PROVIDER_KEY",
                "FILLPIPE_PUBLIC_URL",
                "FILLPIPE_SIGNING_KEY",
            ]
        ),
    )
    assert result.exit_code == 2
    assert "FILLPIPE_REDIS_URL is not set" in result.output


@pytest.mark.integration
def test_status_from_another_shell_reads_the_stack(stack, clean_environ):
    env = {**clean_environ, **stack.env}
    unknown = run_fillpipe("status", "b-missing", env=env)
    assert unknown.returncode == 2
    assert "no batch 'b-missing'" in unknown.stderr
