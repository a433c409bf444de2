"""``python -m hub.import_worker '{"batch_id":…, "path":…, …}'``: run one import job and exit."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from redis.asyncio import Redis

from hub.cli import configure_logging
from hub.import_jobs import run_import
from hub.settings import Settings
from storage.db import create_engine


async def _main(args: dict[str, object]) -> int:
    settings = Settings()
    engine = create_engine(settings.database_url, pool_size=2)
    redis = Redis.from_url(settings.redis_url)
    try:
        result = await run_import(
            engine,
            redis,
            settings,
            int(args["batch_id"]),
            Path(str(args["path"])),  # type: ignore[arg-type]
            mapping=args.get("mapping"),  # type: ignore[arg-type]
            campaign_id=args.get("campaign_id"),  # type: ignore[arg-type]
            actor_id=args.get("actor_id"),  # type: ignore[arg-type]
        )
    finally:
        await redis.aclose()
        await engine.dispose()
    return 0 if result.status == "done" else 1


if __name__ == "__main__":
    configure_logging()
    raise SystemExit(asyncio.run(_main(json.loads(sys.argv[1]))))
