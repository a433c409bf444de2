"""Test services: the configured Postgres/Redis (CI) or the bundled ones, and hub server processes."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

from storage.db import create_engine

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


async def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    """CREATE DATABASE (optionally from a migrated template); returns its URL."""
    engine = create_engine(admin_url, pool_size=1)
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        clause = f" TEMPLATE {template}" if template else ""
        await conn.execute(text(f'CREATE DATABASE "{name}"{clause}'))
    await engine.dispose()
    return with_database(admin_url, name)


async def drop_database(admin_url: str, name: str) -> None:
    engine = create_engine(admin_url, pool_size=1)
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await engine.dispose()


@dataclass
class HubServer:
    """One ``lineup serve`` process on a free loopback port."""

    database_url: str
    redis_url: str
    redis_prefix: str
    env_overrides: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    secret_key: str = "test-secret-" + secrets.token_hex(8)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, log_dir: Path) -> HubServer:
        env = {
            **os.environ,
            "LINEUP_DATABASE_URL": self.database_url,
            "LINEUP_REDIS_URL": self.redis_url,
            "LINEUP_REDIS_PREFIX": self.redis_prefix,
            "LINEUP_SECRET_KEY": self.secret_key,
            "LINEUP_HOST": "127.0.0.1",
            "LINEUP_PORT": str(self.port),
            "LINEUP_DATA_DIR": str(log_dir / f"data-{self.port}"),
            # Quick, certain simulated calls unless a test says otherwise.
            "LINEUP_SIM_ANSWER_RATE": "1.0",
            "LINEUP_SIM_RING_S": "[0.05, 0.1]",
            "LINEUP_SIM_TALK_S": "[0.3, 0.4]",
            "LINEUP_SIM_NO_ANSWER_AFTER_S": "0.3",
            "LINEUP_SIM_AGENT_ANSWER_S": "[0.05, 0.1]",
            "LINEUP_SIM_ABANDON_RATE": "0",
            "LINEUP_HEARTBEAT_S": "1",
            "LINEUP_IDLE_RESCAN_S": "1",
            **self.env_overrides,
        }
        self.log_path = log_dir / f"hub-{self.port}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", "serve"],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"hub exited: {self.log_tail()}")
            try:
                if httpx.get(self.base + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)  # a child process starting: nothing to await but its port
        raise RuntimeError(f"hub did not start in 60 s: {self.log_tail()}")

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path else ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
