"""Running the `fillpipe` command as a user does: a separate process, its own environment."""

import subprocess
import sys
from collections.abc import Mapping

COMMAND_TIMEOUT_S = 280


def run_fillpipe(
    *args: str, env: Mapping[str, str], timeout_s: float = COMMAND_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """`python -m fillpipe ARGS` with `env`, output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "fillpipe", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
