"""What the HTTP benchmarks share: a free port, waiting for a `reptrend serve` to be ready, and
the CPU time of the server's processes and of its PostgreSQL backends."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import psycopg


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


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU of each of these processes so far (gone ones are left out)."""
    found = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / _TICKS
    return found


def cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two readings: processes started in between count whole, and one that
    exited in between is missing its last part (the bench reports how many did)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                pids.append(int(entry.name))
    return pids


def backend_pids(base_url: str, application_name: str) -> list[int]:
    with psycopg.connect(base_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (application_name,)
        ).fetchall()
    return [int(row[0]) for row in rows]
