"""Free TCP ports on the loopback interface, chosen by the kernel.

A port is free when it is chosen; another process may take it before our server binds
it, so callers keep that window short and retry with new ports when a bind fails.
"""

from __future__ import annotations

import socket
from contextlib import ExitStack

LOOPBACK = "127.0.0.1"
MAX_PORT = 65535
PAIR_ATTEMPTS = 50


def free_ports(count: int, *, host: str = LOOPBACK) -> list[int]:
    """`count` distinct ports that are free right now (all held open together while chosen)."""
    with ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]


def is_free(port: int, *, host: str = LOOPBACK) -> bool:
    """Whether `port` can be bound on `host` right now."""
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port_pair(
    offset: int, *, exclude: frozenset[int] = frozenset(), host: str = LOOPBACK
) -> int:
    """A free port P with P + `offset` free too, neither of them in `exclude`.

    For servers that dial a companion port at a fixed offset from the one they listen on.
    """
    for _ in range(PAIR_ATTEMPTS):
        (port,) = free_ports(1, host=host)
        partner = port + offset
        if partner <= MAX_PORT and not {port, partner} & exclude and is_free(partner, host=host):
            return port
    raise OSError(f"no free pair of loopback ports {offset} apart")
