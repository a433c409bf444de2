"""Websocket protocol v1 without I/O: parse client frames into commands, stamp server events.

See DESIGN.md section 5. Message names and fields are a contract with other clients.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

COMMAND_TYPES = (
    "state.set",
    "call.dial",
    "call.dial_number",
    "call.hangup",
    "lead.dispose",
    "customer.create",
    "ping",
)


class ProtocolError(Exception):
    """A client frame we cannot act on; becomes an ``error`` frame, never a crash."""

    def __init__(self, code: str, message: str, command_id: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.command_id = command_id


@dataclass(frozen=True, slots=True)
class Command:
    type: str
    id: Any
    fields: dict[str, Any]

    def int_field(self, name: str) -> int:
        value = self.fields.get(name)
        if isinstance(value, bool):
            value = None
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)  # htmx forms send strings
        if not isinstance(value, int):
            raise ProtocolError("invalid", f"{name} must be an integer", self.id)
        return value

    def str_field(self, name: str, *, required: bool = True, max_len: int = 200) -> str:
        value = self.fields.get(name)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or (required and not value.strip()):
            raise ProtocolError("invalid", f"{name} must be a non-empty string", self.id)
        if len(value) > max_len:
            raise ProtocolError("invalid", f"{name} is longer than {max_len} characters", self.id)
        return value

    def time_field(self, name: str) -> datetime | None:
        value = self.fields.get(name)
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            raise ProtocolError("invalid", f"{name} must be an ISO-8601 time or null", self.id)
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ProtocolError("invalid", f"{name} is not an ISO-8601 time: {value!r}", self.id) from None
        if parsed.tzinfo is None:
            # Browser forms send local wall time plus the browser's IANA zone in "tz".
            try:
                parsed = parsed.replace(tzinfo=ZoneInfo(str(self.fields.get("tz") or "")))
            except (ValueError, ZoneInfoNotFoundError):
                raise ProtocolError(
                    "invalid", f"{name} needs a time zone offset, e.g. +08:00", self.id
                ) from None
        return parsed.astimezone(UTC)


def parse_command(raw: str | bytes) -> Command:
    """One client frame → a Command. Raises ProtocolError for bad JSON and unknown types."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("bad_json", "frame is not valid JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_json", "frame must be a JSON object")
    command_id = data.get("id")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("invalid", "frame has no 'type'", command_id)
    if kind not in COMMAND_TYPES:
        raise ProtocolError("unknown_type", f"unknown message type {kind!r}", command_id)
    fields = {k: v for k, v in data.items() if k not in ("type", "id", "HEADERS")}
    return Command(kind, command_id, fields)


@dataclass
class EventStamper:
    """Per-connection ``seq`` and ``ts`` for server events."""

    seq: int = 0
    clock: Any = field(default=time.time)

    def stamp(self, event: dict[str, Any]) -> dict[str, Any]:
        self.seq += 1
        return {**event, "seq": self.seq, "ts": int(self.clock() * 1000)}


def ack(command_id: Any) -> dict[str, Any]:
    return {"type": "ack", "id": command_id}


def error(code: str, message: str, command_id: Any = None) -> dict[str, Any]:
    return {"type": "error", "id": command_id, "code": code, "message": message}
