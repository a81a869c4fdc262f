"""Throughput of the webhook receiver: verified callbacks/s beside a plain Starlette POST.

Starts an embedded Valkey, writes `--jobs` jobs to the ledger in `awaiting_result`, and
runs the receiver as `fillpipe.services.build_receiver_app` composes it (real signer,
recorder, collects queued in the ledger's outbox on that Valkey), plus a trivial POST route on the
same app, under ONE uvicorn worker on 127.0.0.1 in a subprocess. A load generator in
another process (asyncio raw sockets, keep-alive HTTP/1.1, precomputed request bytes,
`--connections` connections) fires one genuine callback per job plus `--duplicates`
more, then as many plain POSTs, and (unless `--no-ceiling`) as many requests at a
bare asyncio responder, which is the generator's own ceiling. Figures only: nothing here
asserts on time. Run: `python -m bench.bench_receiver`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
STARTUP_TIMEOUT_S = 30.0
TARGET_PER_S = 5000.0
PLAIN_PATH = "/bench/plain"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


# -- the server subprocess ------------------------------------------------------------------


def serve(port: int, profile: Path | None) -> None:
    """The composed receiver plus a plain POST route, under one uvicorn worker."""
    import uvicorn
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from fillpipe.services import build_receiver_app
    from pipeline.settings import Settings

    settings = Settings.from_environ(os.environ)
    app = build_receiver_app(settings)

    async def plain(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"status": "ok"})

    app.router.routes.append(Route(PLAIN_PATH, plain, methods=["POST"]))
    if profile is None:
        uvicorn.run(app, host=HOST, port=port, access_log=False, log_level="warning")
        return
    import cProfile
    import signal

    # uvicorn re-raises the SIGTERM it caught once it has shut down: let that return here.
    signal.signal(signal.SIGTERM, lambda *_: None)
    profiler = cProfile.Profile()  # the event loop's thread only
    profiler.enable()
    try:
        uvicorn.run(app, host=HOST, port=port, access_log=False, log_level="warning")
    finally:
        profiler.disable()
        profiler.dump_stats(str(profile))


def bare_responder(port: int) -> None:
    """The fastest server asyncio can be: a fixed 200 for every request, no parsing."""
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: 15\r\ncontent-type: application/json\r\n\r\n"
    answer += b'{"status":"ok"}'

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.buffer = b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while True:
                head_end = self.buffer.find(b"\r\n\r\n")
                if head_end < 0:
                    return
                head = self.buffer[:head_end].lower()
                length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
                total = head_end + 4 + length
                if len(self.buffer) < total:
                    return
                self.buffer = self.buffer[total:]
                self.transport.write(answer)  # type: ignore[attr-defined]

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Echo, HOST, port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "bench.bench_receiver", *args], env=env)


def wait_until_up(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the server exited during start-up")
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start in time")


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


# -- the load generator (its own process) ---------------------------------------------------


def request_bytes(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"host: {HOST}", f"content-length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _fire(port: int, requests: list[bytes], connections: int) -> tuple[float, dict[int, int]]:
    queue = iter(requests)
    statuses: dict[int, int] = {}

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        for raw in queue:
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            statuses[status] = statuses.get(status, 0) + 1
            lower = head.lower()
            at = lower.find(b"content-length:")
            if at >= 0:
                length = int(lower[at + 15 : lower.find(b"\r\n", at)])
                await reader.readexactly(length)
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    return time.perf_counter() - started, statuses


def fire(port: int, requests: list[bytes], connections: int, result: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    result.put(asyncio.run(_fire(port, requests, connections)))


def run_load(port: int, requests: list[bytes], connections: int) -> tuple[float, dict[int, int]]:
    """Fire `requests` from a separate process; (elapsed seconds, answers by status)."""
    context = multiprocessing.get_context("fork")
    result: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
    process = context.Process(target=fire, args=(port, requests, connections, result))
    process.start()
    elapsed, statuses = result.get()
    process.join()
    return elapsed, statuses


# -- the run -----------------------------------------------------------------------------


def prepare_jobs(settings, count: int):  # type: ignore[no-untyped-def]
    """`count` jobs in one batch, each submitted as attempt 1 and awaiting its result."""
    from pipeline.ledger import Ledger
    from pipeline.models import EditParams, JobRef, JobSpec
    from pipeline.states import JobState

    # Every job holds a slot, as in flight: the callbacks free them.
    ledger = Ledger.from_settings(settings)
    ledger = Ledger(ledger.redis, slots=count, deadlines=settings.deadlines)
    batch_id = f"bench{secrets.token_hex(4)}"
    refs = [JobRef(batch_id, f"job-{index:06d}") for index in range(count)]
    ledger.batches.create(
        batch_id,
        (
            JobSpec(
                ref=ref,
                image_uri="s3://fillpipe/i.png",
                mask_uri="s3://fillpipe/m.png",
                output_uri=f"s3://fillpipe/outputs/{batch_id}/{ref.job_id}.png",
                params=EditParams(prompt="a matte terracotta glaze", finetune_id="brand"),
            )
            for ref in refs
        ),
    )
    for ref in refs:
        ledger.jobs.transition(
            ref, from_states=[JobState.DISPATCHED], to_state=JobState.SUBMITTING, attempt=1
        )
        ledger.jobs.transition(
            ref,
            from_states=[JobState.SUBMITTING],
            to_state=JobState.AWAITING_RESULT,
            fields={"polling_url": f"http://{HOST}:1/v1/get_result?id={ref.job_id}"},
        )
    return ledger, refs


def callback_requests(settings, refs, duplicates: float) -> list[bytes]:  # type: ignore[no-untyped-def]
    from pipeline.signing import CallbackSigner

    signer = CallbackSigner(settings.signing_keys, max_age_s=settings.callback_token_max_age_s)
    requests = []
    for ref in refs:
        body = json.dumps(
            {
                "task_id": f"task-{ref.job_id}",
                "status": "SUCCESS",
                "result": {
                    "sample": "https://delivery.eu1.bfl.ai/results/x/sample.jpeg?se=1&sig=abc",
                    "seed": 7,
                    "prompt": "a matte terracotta glaze",
                    "start_time": 1700000000.1,
                    "end_time": 1700000004.2,
                    "duration": 4.1,
                },
            },
            separators=(",", ":"),
        ).encode()
        requests.append(
            request_bytes(
                f"/v1/callbacks/bfl/{signer.token(ref, 1)}",
                body,
                {
                    "content-type": "application/json",
                    "x-webhook-secret": signer.webhook_secret(ref, 1),
                },
            )
        )
    rng = random.Random(1)
    extra = [rng.choice(requests) for _ in range(int(len(requests) * duplicates))]
    # Originals first in a shuffled order, duplicates mixed into the second half.
    rng.shuffle(requests)
    half = len(requests) // 2
    tail = requests[half:] + extra
    rng.shuffle(tail)
    return requests[:half] + tail


def report(name: str, count: int, elapsed: float, statuses: dict[int, int]) -> float:
    rate = count / elapsed if elapsed else 0.0
    answers = ", ".join(f"{code}: {n}" for code, n in sorted(statuses.items()))
    print(f"{name:<34}{count:>9}{elapsed:>9.2f}{rate:>10.0f}   {answers}")
    return rate


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--duplicates", type=float, default=0.2, help="share of extra repeats")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--profile", type=Path, help="write the server's cProfile stats here")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the bare responder")
    parser.add_argument("--serve-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-profile", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--bare-port", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """The bench, or (with the hidden flags) one of the servers it starts."""
    args = parse_args(argv)
    if args.serve_port:
        serve(args.serve_port, args.serve_profile)
        return
    if args.bare_port:
        bare_responder(args.bare_port)
        return
    measure(args)


def measure(args: argparse.Namespace) -> None:
    """Valkey in a temporary dir, the jobs and their callbacks, the loads, then the checks."""
    from fillpipe.servers import ValkeyServer
    from pipeline.settings import Settings

    with tempfile.TemporaryDirectory(prefix="bench-receiver-") as tmp:
        valkey = ValkeyServer(Path(tmp) / "valkey", Path(tmp) / "valkey.log")
        valkey.start(timeout_s=30)
        try:
            env = bench_environ(valkey.url)
            settings = Settings.from_environ(env)
            prepared = time.perf_counter()
            ledger, refs = prepare_jobs(settings, args.jobs)
            callbacks = callback_requests(settings, refs, args.duplicates)
            print(
                f"receiver bench: {args.jobs} jobs awaiting_result (+{len(callbacks) - args.jobs} "
                f"duplicate callbacks), one uvicorn worker, {args.connections} keep-alive "
                f"connections, prepared in {time.perf_counter() - prepared:.1f} s"
            )
            verified, baseline, plain = load_receiver(args, env, callbacks)
            if not args.no_ceiling:
                load_bare_responder(args, env, plain)
            print_checks(args, ledger, verified, baseline)
            ledger.close()
        finally:
            valkey.stop()


def bench_environ(redis_url: str) -> dict[str, str]:
    """This process's environment without FILLPIPE_* settings, plus the bench's own."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("FILLPIPE_")},
        "FILLPIPE_REDIS_URL": redis_url,
        "FILLPIPE_PROVIDER_URL": f"http://{HOST}:1",
        "FILLPIPE_PROVIDER_KEY": secrets.token_urlsafe(16),
        "FILLPIPE_PUBLIC_URL": f"http://{HOST}:1",
        "FILLPIPE_SIGNING_KEY": secrets.token_urlsafe(48),
    }


def load_receiver(
    args: argparse.Namespace, env: dict[str, str], callbacks: list[bytes]
) -> tuple[float, float, list[bytes]]:
    """The callbacks, then as many plain POSTs, at the receiver's server.

    Returns the verified and the plain rates (requests per second) and the plain requests.
    """
    port = free_port()
    server_args = ["--serve-port", str(port)]
    if args.profile:
        server_args += ["--serve-profile", str(args.profile.resolve())]
    server = start(server_args, env)
    try:
        wait_until_up(port, server)
        print(f"{'':<34}{'requests':>9}{'time s':>9}{'req/s':>10}   answers")
        elapsed, statuses = run_load(port, callbacks, args.connections)
        verified = report("verified callbacks (+dedupe)", len(callbacks), elapsed, statuses)
        plain_body = b'{"task_id":"x","status":"SUCCESS"}'
        plain = [request_bytes(PLAIN_PATH, plain_body, {"content-type": "application/json"})] * len(
            callbacks
        )
        elapsed, statuses = run_load(port, plain, args.connections)
        baseline = report("plain Starlette POST", len(plain), elapsed, statuses)
    finally:
        stop(server)
    return verified, baseline, plain


def load_bare_responder(args: argparse.Namespace, env: dict[str, str], plain: list[bytes]) -> None:
    """The plain POSTs at the bare asyncio responder: the load generator's own ceiling."""
    bare_port = free_port()
    bare = start(["--bare-port", str(bare_port)], env)
    try:
        wait_until_up(bare_port, bare)
        elapsed, statuses = run_load(bare_port, plain, args.connections)
        report("generator ceiling (bare asyncio)", len(plain), elapsed, statuses)
    finally:
        stop(bare)


def print_checks(args: argparse.Namespace, ledger: Any, verified: float, baseline: float) -> None:
    """One collect queued per job, the verified rate against its target, and beside plain."""
    queued = sum(entry.task == "collect" for entry in ledger.outbox.waiting())
    print(f"check: collects queued in the outbox {queued} (one per job: {args.jobs})")
    met = "met" if verified >= TARGET_PER_S else "NOT met"
    print(f"target: {verified:.0f} verified callbacks/s vs >= {TARGET_PER_S:.0f} ({met})")
    print(f"verified / plain = {verified / baseline:.2f}x" if baseline else "")


if __name__ == "__main__":
    main()
