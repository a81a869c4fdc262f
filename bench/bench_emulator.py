"""Throughput of the emulator under a real uvicorn server, fills beside `/healthz`.

Starts the emulator (zero latency) in a subprocess on a free 127.0.0.1 port, then with
one httpx async client and `--concurrency` workers runs (a) `--jobs` fill round trips of
a 512x512 image (submit, then get_result until Ready) and (b) as many `/healthz`
requests, both capped at `--time-cap-s`, and prints the figures side by side. Figures
only: nothing here asserts on time. Run: `python -m bench.bench_emulator`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import numpy as np
from PIL import Image

HOST = "127.0.0.1"
KEY = "bench-key"
IMAGE_SIZE = 512
STARTUP_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.01
REQUEST_TIMEOUT_S = 30.0
EMULATOR_ENV = {
    "FILLPIPE_EMULATOR_API_KEYS": KEY,
    "FILLPIPE_EMULATOR_INITIAL_CREDITS": "1000000000",
    "FILLPIPE_EMULATOR_MAX_ACTIVE_TASKS": "1000",
    "FILLPIPE_EMULATOR_LATENCY_BASE_S": "0",
    "FILLPIPE_EMULATOR_LATENCY_PER_MP_S": "0",
    "FILLPIPE_EMULATOR_LATENCY_JITTER_S": "0",
}


@dataclass
class Tally:
    """What one load phase measured: per-request and per-unit (job) latencies."""

    request_s: list[float] = field(default_factory=list)
    unit_s: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed_s: float = 0.0

    def rate(self, count: int) -> float:
        return count / self.elapsed_s if self.elapsed_s else 0.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def serve(port: int) -> None:
    """The emulator under uvicorn (the subprocess's entry point)."""
    import uvicorn

    from emulator.app import create_app
    from emulator.config import EmulatorConfig

    app = create_app(EmulatorConfig.from_environ(os.environ))
    uvicorn.run(app, host=HOST, port=port, access_log=False, log_level="warning")


def start_server(port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "bench.bench_emulator", "--serve-port", str(port)]
    return subprocess.Popen(command, env={**os.environ, **EMULATOR_ENV})


def wait_until_up(base_url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the emulator exited during start-up")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("the emulator did not start in time")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def fill_body() -> dict[str, object]:
    """A textured 512x512 PNG with a centred square to repaint."""
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE]
    base = np.stack([xs // 2, ys // 2, (xs + ys) // 4], axis=2)
    pixels = np.clip(base + rng.integers(0, 24, base.shape), 0, 255).astype(np.uint8)
    mask = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE), 0)
    quarter = IMAGE_SIZE // 4
    mask.paste(255, (quarter, quarter, 3 * quarter, 3 * quarter))
    return {
        "image": png_b64(Image.fromarray(pixels)),
        "mask": png_b64(mask),
        "prompt": "a red sofa",
        "seed": 1,
        "output_format": "jpeg",
    }


def png_b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


async def timed(tally: Tally, request: Awaitable[httpx.Response]) -> httpx.Response:
    started = time.perf_counter()
    response = await request
    tally.request_s.append(time.perf_counter() - started)
    return response


async def fill_round_trip(client: httpx.AsyncClient, body: dict[str, object], tally: Tally) -> None:
    """Submit, then poll the polling URL until the task is no longer Pending."""
    started = time.perf_counter()
    submitted = await timed(tally, client.post("/v1/flux-pro-1.0-fill", json=body))
    if submitted.status_code != 200:
        tally.errors += 1
        return
    polling_url = submitted.json()["polling_url"]
    while True:
        status = (await timed(tally, client.get(polling_url))).json()["status"]
        if status != "Pending":
            break
        await asyncio.sleep(POLL_INTERVAL_S)
    if status == "Ready":
        tally.unit_s.append(time.perf_counter() - started)
    else:
        tally.errors += 1


async def healthz(client: httpx.AsyncClient, tally: Tally) -> None:
    response = await timed(tally, client.get("/healthz"))
    if response.status_code == 200:
        tally.unit_s.append(tally.request_s[-1])
    else:
        tally.errors += 1


async def run_phase(
    count: int, concurrency: int, time_cap_s: float, unit: Callable[[Tally], Awaitable[None]]
) -> Tally:
    """`count` units over `concurrency` workers, none started after `time_cap_s`."""
    tally = Tally()
    remaining = iter(range(count))
    started = time.perf_counter()
    deadline = started + time_cap_s

    async def worker() -> None:
        for _ in remaining:
            if time.perf_counter() > deadline:
                return
            await unit(tally)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    tally.elapsed_s = time.perf_counter() - started
    return tally


async def measure(base_url: str, args: argparse.Namespace) -> tuple[Tally, Tally]:
    body = fill_body()
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(
        base_url=base_url, headers={"x-key": KEY}, limits=limits, timeout=REQUEST_TIMEOUT_S
    ) as client:
        fills = await run_phase(
            args.jobs,
            args.concurrency,
            args.time_cap_s,
            lambda tally: fill_round_trip(client, body, tally),
        )
        health = await run_phase(
            args.health_requests or len(fills.request_s),
            args.concurrency,
            args.time_cap_s,
            lambda tally: healthz(client, tally),
        )
    return fills, health


def percentile_ms(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0] * 1000
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1] * 1000


def report(fills: Tally, health: Tally, args: argparse.Namespace) -> None:
    fill_rps = fills.rate(len(fills.request_s))
    health_rps = health.rate(len(health.request_s))
    print(
        f"emulator bench: {IMAGE_SIZE}x{IMAGE_SIZE} fills, latency 0, "
        f"concurrency {args.concurrency}, time cap {args.time_cap_s:g} s"
    )
    print(f"{'':22}{'requests':>9}{'errors':>8}{'time s':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}")
    phases = (("fill (submit+poll)", fills, fill_rps), ("healthz", health, health_rps))
    for name, tally, rps in phases:
        print(
            f"{name:22}{len(tally.request_s):>9}{tally.errors:>8}{tally.elapsed_s:>8.2f}"
            f"{rps:>9.1f}{percentile_ms(tally.request_s, 0.5):>9.1f}"
            f"{percentile_ms(tally.request_s, 0.99):>9.1f}"
        )
    print(
        f"fill jobs: {len(fills.unit_s)} Ready of {args.jobs}, {fills.rate(len(fills.unit_s)):.1f} "
        f"jobs/s, job p50 {percentile_ms(fills.unit_s, 0.5):.1f} ms, "
        f"p99 {percentile_ms(fills.unit_s, 0.99):.1f} ms, "
        f"{len(fills.request_s) / max(1, len(fills.unit_s)):.1f} requests/job"
    )
    ratio = health_rps / fill_rps if fill_rps else float("nan")
    print(f"healthz req/s / fill req/s = {ratio:.1f}x")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=400, help="fill round trips (400)")
    parser.add_argument("--concurrency", type=int, default=16, help="parallel workers (16)")
    parser.add_argument("--time-cap-s", type=float, default=60.0, help="per phase (60)")
    parser.add_argument(
        "--health-requests", type=int, default=0, help="default: as many as the fill phase sent"
    )
    parser.add_argument("--serve-port", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.serve_port is not None:
        serve(args.serve_port)
        return
    port = free_port()
    base_url = f"http://{HOST}:{port}"
    server = start_server(port)
    try:
        wait_until_up(base_url, server)
        fills, health = asyncio.run(measure(base_url, args))
    finally:
        stop_server(server)
    report(fills, health, args)


if __name__ == "__main__":
    main()
