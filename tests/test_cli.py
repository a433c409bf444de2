"""The ``lineup`` command line against a real database."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from sqlalchemy import text

from hub.passwords import verify_password
from tests.services import ROOT


def _lineup(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_migrate_and_user_add(database_url, redis_url, db, tmp_path):
    env = {
        "LINEUP_DATABASE_URL": database_url,
        "LINEUP_REDIS_URL": redis_url,
        "LINEUP_DATA_DIR": str(tmp_path),
    }
    assert _lineup(["migrate"], env).returncode == 0
    added = _lineup(
        ["user", "add", "zoe", "--role", "tmk", "--extension", "1202"], env, stdin="s3cret-enough\n"
    )
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["role"] == "tmk"
    again = _lineup(["user", "add", "zoe", "--role", "tmk"], env, stdin="s3cret-enough\n")
    assert again.returncode == 1 and "already exists" in again.stdout
    short = _lineup(["user", "add", "yan", "--role", "sales"], env, stdin="short\n")
    assert short.returncode == 2 and "at least 8" in short.stdout
    async with db() as s:
        row = (
            await s.execute(text("SELECT role, sip_extension, password_hash FROM users WHERE username='zoe'"))
        ).one()
    assert row.role == "tmk" and row.sip_extension == "1202"
    assert verify_password(row.password_hash, "s3cret-enough") and row.password_hash.startswith("$argon2")
