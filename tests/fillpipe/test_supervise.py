"""`fillpipe up` keeps its services running: a service that exits comes back on the same
address after a growing delay, and only a crash loop stops the stack."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from fillpipe.processes import group_members
from fillpipe.stack import read_env_file
from fillpipe.stack.restarts import RestartPolicy
from tests.commands import run_fillpipe
from tests.conftest import STACK_EMULATOR_ENV
from tests.fillpipe.test_stack import (
    ALL_SERVICES,
    external_servers,
    healthy,
    no_process_left,
    start_up,
    stop_up,
    wait_for,
    wait_for_pids,
)


class FakeClock:
    """Seconds that pass only when a test says so."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


def policy(clock: FakeClock) -> RestartPolicy:
    return RestartPolicy(
        clock=clock,
        first_delay_s=1,
        max_delay_s=30,
        healthy_after_s=60,
        quick_exit_s=10,
        crash_loop_exits=5,
    )


def run_then_exit(restarts: RestartPolicy, clock: FakeClock, ran_s: float) -> float | None:
    """The service starts, runs `ran_s` seconds and exits: the policy's answer."""
    restarts.started()
    clock.advance(ran_s)
    return restarts.exited()


# -- the policy, on a fake clock -----------------------------------------------------------


@pytest.mark.timeout(10)
def test_the_delay_doubles_while_the_service_keeps_exiting_up_to_the_cap() -> None:
    clock = FakeClock()
    restarts = policy(clock)
    delays = [run_then_exit(restarts, clock, ran_s=20) for _ in range(8)]
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]


@pytest.mark.timeout(10)
def test_a_healthy_run_resets_the_delay() -> None:
    clock = FakeClock()
    restarts = policy(clock)
    assert [run_then_exit(restarts, clock, ran_s=20) for _ in range(3)] == [1, 2, 4]
    assert run_then_exit(restarts, clock, ran_s=61) == 1
    assert run_then_exit(restarts, clock, ran_s=20) == 2


@pytest.mark.timeout(10)
def test_five_quick_exits_in_a_row_are_a_crash_loop() -> None:
    clock = FakeClock()
    restarts = policy(clock)
    delays = [run_then_exit(restarts, clock, ran_s=2) for _ in range(4)]
    assert delays == [1, 2, 4, 8]
    assert restarts.quick_exits_in_a_row == 4
    assert run_then_exit(restarts, clock, ran_s=2) is None
    assert restarts.quick_exits_in_a_row == 5


@pytest.mark.timeout(10)
def test_a_run_past_the_quick_exit_time_breaks_the_crash_loop_count() -> None:
    clock = FakeClock()
    restarts = policy(clock)
    for _ in range(4):
        run_then_exit(restarts, clock, ran_s=2)
    assert run_then_exit(restarts, clock, ran_s=15) == 16
    assert restarts.quick_exits_in_a_row == 0
    for _ in range(4):
        assert run_then_exit(restarts, clock, ran_s=2) is not None
    assert run_then_exit(restarts, clock, ran_s=2) is None


@pytest.mark.timeout(10)
def test_the_run_time_counts_from_construction_until_the_first_restart() -> None:
    clock = FakeClock()
    restarts = policy(clock)
    clock.advance(3)
    assert restarts.exited() == 1
    assert restarts.quick_exits_in_a_row == 1


# -- `fillpipe up`, a real subprocess -----------------------------------------------------


def read_pids(state: Path) -> dict[str, int]:
    try:
        return dict(json.loads((state / "stack.pids").read_text()))
    except FileNotFoundError:
        return {}


def came_back(state: Path, name: str, old_pid: int) -> bool:
    pid = read_pids(state).get(name)
    return pid is not None and pid != old_pid and bool(group_members(pid))


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_a_killed_worker_comes_back_by_itself_and_the_stack_still_works(
    tmp_path: Path, clean_environ: dict[str, str]
) -> None:
    state = tmp_path / "state"
    up = start_up(state, {**clean_environ, **STACK_EMULATOR_ENV})
    try:
        pids = wait_for_pids(up, state)
        assert set(pids) == ALL_SERVICES
        env_before = read_env_file(state)
        os.killpg(pids["worker"], signal.SIGKILL)
        wait_for(lambda: came_back(state, "worker", pids["worker"]), timeout_s=90, what="worker")
        assert up.poll() is None
        assert read_env_file(state) == env_before
        demo = run_fillpipe(
            "demo", "--jobs", "1", "--out", str(tmp_path / "out"),
            env={**clean_environ, **(env_before or {})},
            timeout_s=120,
        )  # fmt: skip
        assert demo.returncode == 0, demo.stdout + demo.stderr
        restarted = read_pids(state)
        up.send_signal(signal.SIGTERM)
        output, _ = up.communicate(timeout=90)
    finally:
        stop_up(up)
    text = output.decode()
    assert up.returncode == 0, text
    assert "worker exited with code -9 (SIGKILL); restarting it in 1 s" in text
    assert f"its log: {state}/logs/worker.log" in text
    wait_for(lambda: no_process_left({**pids, **restarted}), timeout_s=5, what="no process left")
    assert not (state / "stack.pids").exists()


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_killed_receiver_comes_back_on_the_same_address(
    tmp_path: Path, clean_environ: dict[str, str], valkey_url: str, s3_env: dict[str, str]
) -> None:
    up = start_up(tmp_path, external_servers(clean_environ, valkey_url, s3_env))
    try:
        pids = wait_for_pids(up, tmp_path)
        env = read_env_file(tmp_path) or {}
        os.killpg(pids["receiver"], signal.SIGKILL)
        wait_for(lambda: came_back(tmp_path, "receiver", pids["receiver"]), timeout_s=60,
                 what="receiver")  # fmt: skip
        assert healthy(env["FILLPIPE_RECEIVER_URL"])
        assert read_env_file(tmp_path) == env
        restarted = read_pids(tmp_path)
        up.send_signal(signal.SIGTERM)
        output, _ = up.communicate(timeout=60)
    finally:
        stop_up(up)
    assert up.returncode == 0, output.decode()
    assert "receiver exited with code -9 (SIGKILL); restarting it in 1 s (at " in (output.decode())
    wait_for(lambda: no_process_left({**pids, **restarted}), timeout_s=5, what="no process left")


def kill_and_take_its_port(state: Path, pids: dict[str, int], squatter: socket.socket) -> None:
    """SIGKILL the receiver and listen on its port before it restarts: it cannot start."""
    port = urlsplit((read_env_file(state) or {})["FILLPIPE_RECEIVER_URL"]).port or 0
    os.killpg(pids["receiver"], signal.SIGKILL)
    wait_for(lambda: not group_members(pids["receiver"]), timeout_s=5, what="exit")
    wait_for(lambda: bound(squatter, port), timeout_s=10, what="the receiver's port")


def bound(sock: socket.socket, port: int) -> bool:
    """Listen on 127.0.0.1:`port`, so that no other server can (False while it is busy)."""
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    sock.listen()
    return True


def read_until(up: subprocess.Popen[bytes], text: str) -> str:
    """`up`'s output up to the line holding `text` (blocking; the test's timeout bounds it)."""
    assert up.stdout is not None
    lines: list[str] = []
    while not lines or text not in lines[-1]:
        line = up.stdout.readline().decode()
        assert line, "".join(lines)
        lines.append(line)
    return "".join(lines)


def starts(state: Path, name: str) -> int:
    """How many times `name` was started (each start writes one header to its log)."""
    return (state / "logs" / f"{name}.log").read_text().count(f"fillpipe: starting {name}")


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_a_service_that_cannot_start_again_stops_the_stack_with_exit_code_1(
    tmp_path: Path, clean_environ: dict[str, str], valkey_url: str, s3_env: dict[str, str]
) -> None:
    up = start_up(tmp_path, external_servers(clean_environ, valkey_url, s3_env))
    try:
        pids = wait_for_pids(up, tmp_path)
        with socket.socket() as squatter:
            kill_and_take_its_port(tmp_path, pids, squatter)
            output, _ = up.communicate(timeout=150)
    finally:
        stop_up(up)
    text = output.decode()
    assert up.returncode == 1, text
    assert "receiver did not come back: exited during start-up" in text
    assert "times in a row, each within 10 s of starting: giving up on it" in text
    assert f"Its log: {tmp_path}/logs/receiver.log\nlast lines of its log:\n" in text
    assert starts(tmp_path, "receiver") == 5
    wait_for(lambda: no_process_left(pids), timeout_s=5, what="no process left")


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_sigterm_while_a_restart_waits_stops_everything_with_exit_code_0(
    tmp_path: Path, clean_environ: dict[str, str], valkey_url: str, s3_env: dict[str, str]
) -> None:
    up = start_up(tmp_path, external_servers(clean_environ, valkey_url, s3_env))
    try:
        pids = wait_for_pids(up, tmp_path)
        with socket.socket() as squatter:
            kill_and_take_its_port(tmp_path, pids, squatter)
            before = read_until(up, "restarting it in 2 s")  # printed as the wait begins
            up.send_signal(signal.SIGTERM)
            output, _ = up.communicate(timeout=60)
    finally:
        stop_up(up)
    assert up.returncode == 0, before + output.decode()
    assert "receiver did not come back" in before
    assert starts(tmp_path, "receiver") == 2
    wait_for(lambda: no_process_left(pids), timeout_s=5, what="no process left")
