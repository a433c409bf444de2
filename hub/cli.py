"""The ``lineup`` command: serve, migrate, user add, import."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import signal
import sys
from pathlib import Path

from hub.settings import Settings

log = logging.getLogger("lineup.cli")

# Demo mode keeps the loop lively: short simulated calls (its quick retries are the demo policy's).
DEMO_DEFAULTS = {
    "sim_ring_s": (1.0, 3.0),
    "sim_talk_s": (3.0, 8.0),
    "sim_no_answer_after_s": 8.0,
    "sim_inbound_every_s": 45.0,  # a customer calls in now and then: screen pops without a phone system
}


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level,
        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
        stream=sys.stderr,
    )
    # One line per HTTP request to the phone system's RPC would drown the hub's own events.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _out(text: str) -> None:
    """What the command tells its user (not a log line)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def resolve_services(settings: Settings, *, need_secret: bool = False) -> Settings:
    """Fill in missing service URLs by starting the bundled servers, and a secret key for demo mode."""
    from hub import embedded

    update: dict[str, object] = {}
    if not settings.database_url:
        update["database_url"] = embedded.start_postgres(settings.data_dir)
    if not settings.redis_url:
        update["redis_url"] = embedded.start_redis(settings.data_dir)
    if need_secret and not settings.secret_key:
        if not settings.demo:
            raise SystemExit("LINEUP_SECRET_KEY must be set outside demo mode")
        key_file = settings.data_dir / "secret_key"
        key_file.parent.mkdir(parents=True, exist_ok=True)
        if not key_file.exists():
            key_file.write_text(secrets.token_urlsafe(48))
            key_file.chmod(0o600)
        update["secret_key"] = key_file.read_text().strip()
    if settings.demo:
        update.update({k: v for k, v in DEMO_DEFAULTS.items() if k not in settings.model_fields_set})
    return settings.model_copy(update=update)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from hub.app import create_app
    from hub.demo import DEMO_PASSWORD, demo_users, load_demo
    from storage.db import create_engine, session_factory
    from storage.migrate import migrate

    settings = Settings(**({"demo": True} if args.demo else {}))
    if args.port:
        settings = settings.model_copy(update={"port": args.port})
    settings = resolve_services(settings, need_secret=True)

    async def prepare() -> bool:
        await migrate(settings.database_url)
        if not settings.demo:
            return False
        engine = create_engine(settings.database_url, pool_size=1)
        async with session_factory(engine)() as s:
            loaded = await load_demo(s)
        await engine.dispose()
        return loaded

    loaded = asyncio.run(prepare())
    url = f"http://{settings.host}:{settings.port}"
    if args.with_kamailio:
        settings = _start_kamailio(settings, url)
    _out(f"\nLineup is starting at {url}")
    if settings.demo:
        _out(
            "Demo mode" + (" (demo data loaded)" if loaded else "") + f". Every demo login has the password "
            f"'{DEMO_PASSWORD}':"
        )
        for username, _display, role, _ext in demo_users():
            _out(f"  {username:<12} {role.value}")
    _out("")
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        ws="websockets-sansio",
        ws_max_size=settings.ws_max_frame_bytes,
        log_level="warning",
        lifespan="on",
    )
    # uvicorn re-raises SIGTERM after its graceful shutdown; with this handler the process then exits
    # normally, so the bundled Postgres and Redis are stopped (atexit) instead of left running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.Server(config).run()
    return 0


def _start_kamailio(settings: Settings, hub_url: str) -> Settings:
    """A local "real phone system": Kamailio on loopback (the Debian package), stopped on exit."""
    import atexit
    from urllib.parse import urlsplit

    from telephony.kamailio.lab import KamailioServer, LabError, ensure_installed

    missing = ensure_installed()
    if missing:
        raise SystemExit(f"--with-kamailio: {missing}")
    host, _, sip_port = settings.kamailio_sip_address.rpartition(":")
    rpc_port = urlsplit(settings.kamailio_rpc_url).port or 5071
    server = KamailioServer(
        settings.data_dir / "kamailio", hub_url, host=host, sip_port=int(sip_port), rpc_port=rpc_port
    )
    try:
        server.start()
    except LabError as exc:
        raise SystemExit(f"--with-kamailio: Kamailio did not start: {exc}") from None
    atexit.register(server.stop)
    _out(f"Phone system: Kamailio at {server.sip_uri} (log {server.log_path}).")
    _out("  Register agents' softphones there as their extensions (demo: 1001 … 1005, no password);")
    _out(f"  customers calling sip:800@{server.address} reach the demo agents who are ready.")
    return settings.model_copy(update={"gateway": "kamailio"})


def _migrate(args: argparse.Namespace) -> int:
    from storage.migrate import migrate

    settings = resolve_services(Settings())
    asyncio.run(migrate(settings.database_url))
    _out("database is up to date")
    return 0


def _user_add(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import IntegrityError

    from hub.passwords import hash_password
    from storage import users as user_store
    from storage.db import create_engine, session_factory
    from storage.models import Role

    password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        _out("error: the password (read from standard input) must have at least 8 characters")
        return 2
    settings = resolve_services(Settings())

    async def add() -> int:
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            async with session_factory(engine)() as s:
                team_id = (await user_store.team_named(s, args.team)).id if args.team else None
                user = await user_store.add_user(
                    s,
                    username=args.name,
                    display_name=args.display_name or args.name,
                    password_hash=hash_password(password),
                    role=Role(args.role).value,
                    team_id=team_id,
                    sip_extension=args.extension,
                )
                return user.id
        finally:
            await engine.dispose()

    try:
        user_id = asyncio.run(add())
    except IntegrityError:
        _out(f"error: a user named {args.name!r} already exists")
        return 1
    _out(json.dumps({"id": user_id, "username": args.name, "role": args.role}))
    return 0


def _import(args: argparse.Namespace) -> int:
    from hub import lead_import

    settings = resolve_services(Settings())
    try:
        result = asyncio.run(lead_import.import_path(settings, Path(args.file)))
    except lead_import.ImportRefused as exc:
        _out(json.dumps({"error": exc.code, "message": exc.message}, ensure_ascii=False))
        return 1
    _out(json.dumps(result.as_dict(), ensure_ascii=False))
    return 0 if result.status == "done" else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lineup", description="Lineup call-center hub")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the hub (web pages, websockets, APIs)")
    serve.add_argument("--demo", action="store_true", help="demo users, demo leads, short simulated calls")
    serve.add_argument("--port", type=int, default=0, help="overrides LINEUP_PORT")
    serve.add_argument(
        "--with-kamailio",
        action="store_true",
        help="start Kamailio on loopback as the phone system (LINEUP_KAMAILIO_* addresses)",
    )
    serve.set_defaults(func=_serve)

    sub.add_parser("migrate", help="bring the database schema up to date").set_defaults(func=_migrate)

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="user_command", required=True)
    add = user.add_parser("add", help="add a user; the password is read from standard input")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=["admin", "supervisor", "sales", "tmk", "qa"])
    add.add_argument("--display-name", default="")
    add.add_argument("--team", default="")
    add.add_argument("--extension", default=None, help="SIP extension of an agent's phone")
    add.set_defaults(func=_user_add)

    imp = sub.add_parser("import", help="import leads from a CSV/XLSX file; prints a JSON summary")
    imp.add_argument("file")
    imp.set_defaults(func=_import)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
