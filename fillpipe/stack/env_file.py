"""DIR/stack.env: the running stack's settings as `export NAME='value'` lines, so that
another shell can `source` it and `fillpipe` commands can read it back."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path

from fillpipe.private_files import write_private
from fillpipe.stack.state import StateDir

HEADER = "# fillpipe embedded stack: source this file\n"


def write_env_file(path: Path, env: Mapping[str, str]) -> None:
    """Write `env` to `path` as sorted `export NAME='value'` lines, mode 0600."""
    lines = [f"export {name}={shlex.quote(value)}\n" for name, value in sorted(env.items())]
    write_private(path, HEADER + "".join(lines))


def read_env_file(state_dir: Path) -> dict[str, str] | None:
    """The settings in DIR/stack.env, or None when no stack is up there."""
    path = StateDir(state_dir).env_file
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    env = {}
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, value = words[1].split("=", 1)
            env[name] = value
    return env
