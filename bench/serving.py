"""What the HTTP benchmarks share: a free port, and waiting for a `reptrend serve` to be ready."""

from __future__ import annotations

import socket
import subprocess
import time

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_ready(base: str, server: subprocess.Popen[bytes], seconds: float) -> bool:
    """True once `base`/readyz answers 200; False if the server exits or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"{base}/readyz").status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    return False
