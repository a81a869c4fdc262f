"""docker-compose.yml agrees with the code: real subcommands, real settings, durable Redis,
the trigger rules where the receiver and the watchers read them."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import click
import pytest
import yaml

from fillpipe.cli import main
from pipeline.settings import Settings
from tests.infra.examples import (
    INFRA,
    ROOT,
    RULES_PATH,
    TRIGGERS_BUILT,
    example_rules,
    needs_triggers,
)

pytestmark = pytest.mark.timeout(30)

# Each fillpipe service and the CLI command (group, subcommand) it runs.
ENTRY_POINTS = {
    "emulator": ("emulator",),
    "receiver": ("receiver",),
    "dashboard": ("dashboard",),
    "worker": ("worker",),
    "beat": ("beat",),
    "watcher": ("watch", "s3"),
}
FILLPIPE_SERVICES = set(ENTRY_POINTS)
NEEDS_REDIS = {"receiver", "dashboard", "worker", "beat", "flower", "watcher"}
RULES_READERS = {"receiver", "watcher"}
# Settings only the trigger code reads.
TRIGGER_NAMES = {"FILLPIPE_RULES_FILE", "FILLPIPE_EVENTS_TOKEN", "FILLPIPE_MASK_WAIT_S"}
# The rules file on the host (the example unless .env names another), mounted read-only.
RULES_VOLUME = re.compile(
    r"^\$\{FILLPIPE_RULES_HOST_FILE:-\./infra/rules\.example\.toml\}:(?P<target>.+):ro$"
)
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


def entry_point(path: tuple[str, ...]) -> click.Command:
    """The CLI command at `path` (`("watch", "s3")` is `fillpipe watch s3`)."""
    command: click.Command = main
    for word in path:
        assert isinstance(command, click.Group), f"{command.name} has no subcommands"
        assert word in command.commands, f"no `{word}` in `{command.name}`"
        command = command.commands[word]
    return command


def option_names(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in getattr(param, "opts", [])}


def service_params(names: set[str]) -> list[Any]:
    """One pytest param per service; the watcher's wait for the trigger code."""
    return [
        pytest.param(name, marks=needs_triggers if name == "watcher" else ())
        for name in sorted(names)
    ]


def test_the_fillpipe_services_are_built_from_the_image(
    services: dict[str, dict[str, Any]],
) -> None:
    built = {name for name, service in services.items() if "build" in service}
    assert built == FILLPIPE_SERVICES
    for name in built:
        assert services[name]["build"]["dockerfile"] == "infra/Dockerfile"
        assert services[name]["restart"] == "unless-stopped"
    assert 'ENTRYPOINT ["fillpipe"]' in (INFRA / "Dockerfile").read_text()


@pytest.mark.parametrize("name", service_params(FILLPIPE_SERVICES))
def test_fillpipe_services_run_real_subcommands_with_real_options(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    path = ENTRY_POINTS[name]
    words = services[name]["command"]
    assert tuple(words[: len(path)]) == path
    command = entry_point(path)
    used = {word for word in words[len(path) :] if word.startswith("--")}
    assert used <= option_names(command), f"{name}: unknown options {used - option_names(command)}"


def test_app_services_use_only_names_the_settings_read(
    services: dict[str, dict[str, Any]],
) -> None:
    # Until the trigger code is in the tree, nothing reads its settings yet.
    not_yet_read = set() if TRIGGERS_BUILT else TRIGGER_NAMES
    for name in FILLPIPE_SERVICES - {"emulator"}:
        env = interpolated(services[name]["environment"])
        read = names_read_by(Settings.from_environ, env)
        unread = set(env) - read - not_yet_read
        assert not unread, f"{name}: names nothing reads: {unread}"


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


def test_the_dashboard_is_published_on_loopback_only_and_needs_its_token(
    services: dict[str, dict[str, Any]],
) -> None:
    dashboard = services["dashboard"]
    (published,) = dashboard["ports"]
    assert published.startswith("127.0.0.1:")
    assert published.endswith(":8070")
    assert dashboard["command"][dashboard["command"].index("--port") + 1] == "8070"
    assert ":?" in dashboard["environment"]["FILLPIPE_DASHBOARD_TOKEN"]


def test_flower_watches_the_same_broker(services: dict[str, dict[str, Any]]) -> None:
    flower = services["flower"]
    assert flower["image"].startswith("mher/flower")
    assert flower["environment"]["CELERY_BROKER_URL"].endswith("@redis:6379/0")


def rules_mounts(service: dict[str, Any]) -> list[str]:
    """Where the service mounts the rules file (read-only) inside the container."""
    volumes = service.get("volumes", [])
    return [m["target"] for volume in volumes if (m := RULES_VOLUME.match(volume))]


def option_value(words: list[str], option: str) -> str:
    return words[words.index(option) + 1]


def test_the_rules_file_is_mounted_read_only_where_its_readers_look(
    services: dict[str, dict[str, Any]],
) -> None:
    assert (ROOT / "infra" / "rules.example.toml").is_file()
    for name in RULES_READERS:
        assert rules_mounts(services[name]) == [RULES_PATH], name
    for name in FILLPIPE_SERVICES - RULES_READERS:
        assert "FILLPIPE_RULES_FILE" not in services[name]["environment"], name


def test_the_receiver_takes_storage_events_only_with_a_token_from_env(
    services: dict[str, dict[str, Any]],
) -> None:
    env = services["receiver"]["environment"]
    assert env["FILLPIPE_RULES_FILE"] == RULES_PATH
    assert env["FILLPIPE_EVENTS_TOKEN"].startswith("${FILLPIPE_EVENTS_TOKEN:?")


def test_the_watcher_lists_the_example_rule_prefix(services: dict[str, dict[str, Any]]) -> None:
    watcher = services["watcher"]
    words = [INTERPOLATION.sub(_substitute, str(word)) for word in watcher["command"]]
    assert words[:2] == ["watch", "s3"]
    (uri,) = [word for word in words if word.startswith("s3://")]
    assert uri in {f"s3://{rule['bucket']}/{rule['prefix']}" for rule in example_rules()}
    assert option_value(words, "--rules") == RULES_PATH
    assert "--backfill" not in words
    port = option_value(words, "--health-port")
    assert f"http://127.0.0.1:{port}/healthz" in " ".join(watcher["healthcheck"]["test"])


def uncommented_sqs_watcher() -> dict[str, Any]:
    """docker-compose.yml with its commented `sqs-watcher` service switched on."""
    lines = (ROOT / "docker-compose.yml").read_text().splitlines()
    start = lines.index("  # sqs-watcher:")
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("  #"))
    block = ["  " + line.removeprefix("  # ") for line in lines[start:end]]
    services: dict[str, Any] = yaml.safe_load("\n".join(lines[:start] + block + lines[end:]))[
        "services"
    ]
    return services["sqs-watcher"]


def test_the_commented_sqs_watcher_is_a_working_service() -> None:
    service = uncommented_sqs_watcher()
    words = service["command"]
    assert words[:2] == ["watch", "sqs"]
    assert words[2].startswith("${FILLPIPE_SQS_QUEUE_URL:?")
    assert option_value(words, "--rules") == RULES_PATH
    assert rules_mounts(service) == [RULES_PATH]
    assert service["restart"] == "unless-stopped"
    assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert service["healthcheck"]["test"]
    if TRIGGERS_BUILT:
        used = {word for word in words[2:] if word.startswith("--")}
        assert used <= option_names(entry_point(("watch", "sqs")))


def test_env_example_names_every_variable_compose_reads() -> None:
    compose_text = (ROOT / "docker-compose.yml").read_text()
    named = {match["name"] for match in INTERPOLATION.finditer(compose_text)}
    lines = compose_text.splitlines()
    live = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", live))
    example = (INFRA / "env.example").read_text().splitlines()
    set_there = {line.split("=", 1)[0] for line in example if re.match(r"^[A-Z0-9_]+=", line)}
    commented = {m[1] for line in example if (m := re.match(r"^# ([A-Z0-9_]+)=", line))}
    assert named <= set_there | commented, f"not in env.example: {named - set_there - commented}"
    assert required <= set_there, f"required but commented out: {required - set_there}"
