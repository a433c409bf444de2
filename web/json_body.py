"""The body of a JSON write: JSON only (a cross-site form cannot send it), bounded, an object."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

MAX_BODY = 1 << 20


class BodyRefused(Exception):
    """The request body cannot be read as a JSON object; ``status`` says how (415, 413 or 400)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


async def json_object(request: Request, max_bytes: int = MAX_BODY) -> dict[str, Any]:
    if "json" not in request.headers.get("content-type", ""):
        raise BodyRefused("send Content-Type: application/json", 415)
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise BodyRefused("the request body is too large", 413)
    body = await request.body()
    if len(body) > max_bytes:
        raise BodyRefused("the request body is too large", 413)
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise BodyRefused("send a JSON object")
    return data
