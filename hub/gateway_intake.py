"""The phone system's doors into the hub: Kamailio's routing query and its call events.

``POST /gateway/kamailio/route`` must answer within milliseconds (Kamailio's SIP worker waits on
it). Both take requests only from the configured gateway addresses (``LINEUP_GATEWAY_ADDRESSES``)
and answer a malformed body with 400 and the reason.
"""

from __future__ import annotations

import ipaddress
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hub.access import public
from telephony.kamailio import KamailioProtocolError
from telephony.kamailio.gateway import KamailioGateway

log = logging.getLogger("lineup.gateway")

MAX_BODY = 64 * 1024


def allowed_addresses(setting: str) -> frozenset[str]:
    """The addresses in a comma-separated setting, normalised (``::ffff:127.0.0.1`` is 127.0.0.1)."""
    return frozenset(str(ipaddress.ip_address(a.strip())) for a in setting.split(",") if a.strip())


async def _refusal(request: Request) -> tuple[KamailioGateway | None, Response | None]:
    hub = request.app.state.hub
    if not isinstance(hub.gateway, KamailioGateway):
        return None, JSONResponse({"error": "the phone system is not Kamailio"}, status_code=404)
    peer = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(peer)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
    except ValueError:
        address = None
    if address is None or str(address) not in hub.gateway_addresses:
        log.warning("event=gateway_request_refused peer=%s path=%s", peer, request.url.path)
        return None, JSONResponse({"error": "not a configured gateway address"}, status_code=403)
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY:
        return None, JSONResponse({"error": "body too large"}, status_code=413)
    return hub.gateway, None


@public  # not a user: the gateway, by address
async def kamailio_route(request: Request) -> Response:
    gateway, refused = await _refusal(request)
    if gateway is None:
        assert refused is not None
        return refused
    try:
        return JSONResponse(await gateway.handle_route((await request.body())[:MAX_BODY]))
    except KamailioProtocolError as exc:
        log.warning("event=gateway_route_malformed error=%s", exc)
        return JSONResponse({"error": str(exc)}, status_code=400)


@public  # not a user: the gateway, by address
async def kamailio_event(request: Request) -> Response:
    gateway, refused = await _refusal(request)
    if gateway is None:
        assert refused is not None
        return refused
    try:
        gateway.handle_event((await request.body())[:MAX_BODY])
    except KamailioProtocolError as exc:
        log.warning("event=gateway_event_malformed error=%s", exc)
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse({"ok": True})


ROUTES: list[BaseRoute] = [
    Route("/gateway/kamailio/route", kamailio_route, methods=["POST"]),
    Route("/gateway/kamailio/event", kamailio_event, methods=["POST"]),
]
