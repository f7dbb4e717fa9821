"""The real app on a free loopback port: in a background thread, or as `reptrend serve`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI


@contextmanager
def serve_in_thread(app: FastAPI, start_timeout: float = 20) -> Iterator[str]:
    """Yield the base URL (http://127.0.0.1:PORT) while the app serves; stop it afterwards."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@dataclass(frozen=True)
class ServerProcess:
    base_url: str
    process: subprocess.Popen[bytes]


@contextmanager
def serve_in_subprocess(
    database_url: str, *, workers: int = 1, start_timeout: float = 120
) -> Iterator[ServerProcess]:
    """`reptrend serve` as its own process group on a free port, once /readyz answers 200.

    The start-up wait is generous: on a loaded 2-core CI machine two workers can take many
    seconds to import. The process group is killed afterwards if the test has not already.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--port", str(port), "--workers", str(workers)],
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "REPTREND_DATABASE_URL": database_url, "REPTREND_LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while not _ready(base_url):
            if process.poll() is not None:
                raise RuntimeError(f"reptrend serve exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"reptrend serve was not ready within {start_timeout:.0f} s")
            time.sleep(0.1)
        yield ServerProcess(base_url, process)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def _ready(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
