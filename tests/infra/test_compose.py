"""docker-compose.yml agrees with the code: real subcommands, real settings, durable Redis."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from fillpipe.cli import main
from pipeline.settings import Settings

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[2]
FILLPIPE_SERVICES = {"emulator", "receiver", "worker", "beat"}
NEEDS_REDIS = {"receiver", "worker", "beat", "flower"}
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?::?-(?P<default>[^}]*))?[^}]*\}")
SECRET_SIZED = "s" * 40


class RecordingEnviron(dict[str, str]):
    """An environment mapping that remembers every name read from it."""

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, name: str, default: Any = None) -> Any:
        self.read.add(name)
        return super().get(name, default)

    def __getitem__(self, name: str) -> str:
        self.read.add(name)
        return super().__getitem__(name)

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.read.add(name)
        return super().__contains__(name)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def interpolated(environment: Mapping[str, str]) -> dict[str, str]:
    """Compose's `${NAME:-default}` replaced by the default, else by a secret-sized value."""
    return {name: INTERPOLATION.sub(_substitute, str(value)) for name, value in environment.items()}


def _substitute(match: re.Match[str]) -> str:
    return match["default"] if match["default"] is not None else SECRET_SIZED


Reader = Callable[[Mapping[str, str]], object]


def names_read_by(reader: Reader, env: Mapping[str, str]) -> set[str]:
    recording = RecordingEnviron(env)
    reader(recording)
    return recording.read


def test_fillpipe_services_run_real_subcommands_of_the_image(
    services: dict[str, dict[str, Any]],
) -> None:
    built = {name for name, service in services.items() if "build" in service}
    assert built == FILLPIPE_SERVICES
    for name in built:
        command = services[name]["command"]
        assert command[0] == name
        assert command[0] in main.commands
        assert services[name]["build"]["dockerfile"] == "infra/Dockerfile"
    assert 'ENTRYPOINT ["fillpipe"]' in (ROOT / "infra" / "Dockerfile").read_text()


def test_subcommand_options_exist(services: dict[str, dict[str, Any]]) -> None:
    for name in FILLPIPE_SERVICES:
        command = main.commands[name]
        known = {opt for param in command.params for opt in getattr(param, "opts", [])}
        used = {word for word in services[name]["command"][1:] if word.startswith("--")}
        assert used <= known, f"{name}: unknown options {used - known}"


def test_app_services_use_only_names_the_settings_read(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in FILLPIPE_SERVICES - {"emulator"}:
        env = interpolated(services[name]["environment"])
        read = names_read_by(Settings.from_environ, env)
        assert set(env) <= read, f"{name}: names nothing reads: {set(env) - read}"


def test_emulator_uses_only_names_its_config_reads(services: dict[str, dict[str, Any]]) -> None:
    from emulator.config import EmulatorConfig

    env = interpolated(services["emulator"]["environment"])
    read = names_read_by(EmulatorConfig.from_environ, env)
    assert set(env) <= read, f"names the emulator does not read: {set(env) - read}"


def test_redis_is_durable_and_never_evicts(services: dict[str, dict[str, Any]]) -> None:
    config = (ROOT / "infra" / "redis.conf").read_text()
    directives = dict(
        line.split(None, 1) for line in config.splitlines() if line and not line.startswith("#")
    )
    assert directives["appendonly"] == "yes"
    assert directives["appendfsync"] == "everysec"
    assert directives["maxmemory-policy"] == "noeviction"
    redis = services["redis"]
    assert redis["image"].startswith("redis:7")
    assert "./infra/redis.conf:/usr/local/etc/redis/redis.conf:ro" in redis["volumes"]
    assert "/usr/local/etc/redis/redis.conf" in redis["command"]
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_exactly_one_beat(services: dict[str, dict[str, Any]]) -> None:
    beats = [name for name, service in services.items() if "beat" in service.get("command", [])]
    assert beats == ["beat"]
    assert services["beat"].get("deploy", {}).get("replicas", 1) == 1


def test_everything_that_needs_redis_waits_for_it_healthy(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in NEEDS_REDIS:
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "redis" in services["worker"]["environment"]["FILLPIPE_REDIS_URL"]


def test_every_service_has_a_healthcheck_and_servers_have_ports(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name in ("redis", "s3", "emulator", "receiver", "flower"):
        assert services[name].get("ports") or services[name].get("expose"), name
    assert services["receiver"]["ports"] == ["${FILLPIPE_RECEIVER_PORT:-8080}:8080"]


def test_flower_watches_the_same_broker(services: dict[str, dict[str, Any]]) -> None:
    flower = services["flower"]
    assert flower["image"].startswith("mher/flower")
    assert flower["environment"]["CELERY_BROKER_URL"].endswith("@redis:6379/0")
