"""Thin async I/O to Kamailio: JSON-RPC over HTTP and the evapi event stream.

All message shapes live in ``telephony.kamailio.protocol``; this module only moves bytes, keeps one
HTTP client (a new client per call costs 50-120 ms, a reused one about 1 ms on loopback) and maps
every failure to ``telephony.gateway.GatewayError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import httpx

from telephony.gateway import GatewayError
from telephony.kamailio.protocol import (
    KamailioEvent,
    KamailioProtocolError,
    KamailioRpcError,
    LiveDialog,
    NetstringDecoder,
    RegisteredAor,
    bridge_request,
    dlg_list_request,
    parse_dlg_list,
    parse_event,
    parse_rpc_response,
    parse_ul_dump,
    rpc_request,
    ul_dump_request,
)

LOG = logging.getLogger("lineup.kamailio")

__all__ = ["EvapiClient", "KamailioRpc"]


class KamailioRpc:
    """JSON-RPC 2.0 client for Kamailio's ``/RPC`` endpoint (xhttp + jsonrpcs).

    One ``httpx.AsyncClient`` is reused for every call. Every failure (refused connection, timeout,
    HTTP status, JSON-RPC error object, malformed answer) raises ``GatewayError``.
    """

    def __init__(self, url: str, *, timeout: float = 2.0) -> None:
        self.url = url
        self.timeout = timeout
        # trust_env=False: a proxy from the environment must never carry loopback control traffic.
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            trust_env=False,
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=4),
        )
        self._ids = itertools.count(1)

    async def __aenter__(self) -> KamailioRpc:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP client (idempotent)."""
        await self._client.aclose()

    async def call(self, method: str, *params: Any) -> Any:
        """Call any RPC method; returns its ``result``."""
        return await self._send(rpc_request(method, list(params) if params else None, next(self._ids)))

    async def bridge(self, agent_uri: str, customer_uri: str, proxy_uri: str) -> None:
        """Click-to-call (``dlg.bridge_dlg``): ring ``agent_uri``, then REFER it to ``customer_uri``.

        Returns once Kamailio accepted the command; whether the phones answer shows in the events.
        """
        try:
            body = bridge_request(agent_uri, customer_uri, proxy_uri, next(self._ids))
        except ValueError as exc:
            raise GatewayError(f"click-to-call not sent: {exc}") from exc
        await self._send(body)

    async def dialogs(self, *, include_deleted: bool = False) -> list[LiveDialog]:
        """The dialogs Kamailio tracks (``dlg.list``), without recently ended ones unless asked."""
        result = await self._send(dlg_list_request(next(self._ids)))
        try:
            return parse_dlg_list(result, include_deleted=include_deleted)
        except KamailioProtocolError as exc:
            raise GatewayError(f"Kamailio RPC dlg.list: unexpected answer: {exc}") from exc

    async def registered(self) -> list[RegisteredAor]:
        """The registered AoRs (agent extensions) and their contacts (``ul.dump``)."""
        result = await self._send(ul_dump_request(next(self._ids)))
        try:
            return parse_ul_dump(result)
        except KamailioProtocolError as exc:
            raise GatewayError(f"Kamailio RPC ul.dump: unexpected answer: {exc}") from exc

    async def end_dialog(self, dialog: LiveDialog) -> None:
        """Hang up a dialog (``dlg.end_dlg``): Kamailio BYEs both sides; an ``ended`` event follows."""
        if dialog.h_entry is None or dialog.h_id is None:
            raise GatewayError(f"dialog {dialog.call_id} has no handle to end it by")
        await self.call("dlg.end_dlg", dialog.h_entry, dialog.h_id)

    async def _send(self, body: dict[str, Any]) -> Any:
        method = body["method"]
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            response = await self._client.post(self.url, json=body)
        except httpx.TimeoutException as exc:
            raise GatewayError(
                f"Kamailio RPC {method}: no answer from {self.url} within {self.timeout:g} s"
            ) from exc
        except httpx.ConnectError as exc:
            raise GatewayError(f"Kamailio RPC {method}: cannot connect to {self.url} ({exc})") from exc
        except httpx.HTTPError as exc:
            raise GatewayError(f"Kamailio RPC {method}: HTTP failure talking to {self.url}: {exc!r}") from exc
        elapsed_ms = (loop.time() - started) * 1000
        if response.status_code != 200:
            raise GatewayError(
                f"Kamailio RPC {method}: HTTP {response.status_code} from {self.url}: {response.text[:200]}"
            )
        try:
            result = parse_rpc_response(response.content, body["id"])
        except KamailioRpcError as exc:
            raise GatewayError(f"Kamailio RPC {method} refused: {exc.message} (code {exc.code})") from exc
        except KamailioProtocolError as exc:
            raise GatewayError(f"Kamailio RPC {method}: unexpected answer: {exc}") from exc
        LOG.debug("rpc method=%s ms=%.1f", method, elapsed_ms)
        return result


class EvapiClient:
    """Kamailio's evapi stream as an async iterator of ``KamailioEvent``.

    Connects to ``host:port``, decodes netstring frames, skips (and logs) malformed events, and
    reconnects with exponential back-off when the connection fails, ends or loses its framing. Events
    sent while disconnected are lost (evapi only relays to connected clients): reconcile with
    ``KamailioRpc.dialogs()`` after a reconnect. Iterate once; ``close()`` ends the iteration.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        max_frame: int = 1 << 20,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        connect_timeout: float = 2.0,
    ) -> None:
        self.host = host
        self.port = port
        self.max_frame = max_frame
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.connect_timeout = connect_timeout
        self.connects = 0  # successful connections so far (a reconnect makes it > 1)
        self._connected = asyncio.Event()
        self._closing = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout_s: float = 5.0) -> None:
        """Wait until the stream is connected (events are only relayed to connected clients)."""
        try:
            await asyncio.wait_for(self._connected.wait(), timeout_s)
        except TimeoutError:
            raise GatewayError(
                f"evapi {self.host}:{self.port}: not connected within {timeout_s:g} s"
            ) from None

    async def close(self) -> None:
        """Stop the stream: the iteration ends after the current event."""
        self._closing.set()
        if self._writer is not None:
            self._writer.close()

    def __aiter__(self) -> AsyncIterator[KamailioEvent]:
        return self._events()

    async def _pause(self, seconds: float) -> None:
        # A back-off that close() cuts short.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    async def _events(self) -> AsyncIterator[KamailioEvent]:
        backoff = self.backoff_initial
        while not self._closing.is_set():
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), self.connect_timeout
                )
            except (OSError, TimeoutError) as exc:
                LOG.info(
                    "evapi connect failed host=%s port=%s retry_s=%.2f error=%r",
                    self.host, self.port, backoff, exc,
                )  # fmt: skip
                await self._pause(backoff)
                backoff = min(backoff * 2, self.backoff_max)
                continue
            self._writer = writer
            self.connects += 1
            self._connected.set()
            backoff = self.backoff_initial
            LOG.info("evapi connected host=%s port=%s connects=%d", self.host, self.port, self.connects)
            decoder = NetstringDecoder(self.max_frame)
            try:
                while not self._closing.is_set():
                    data = await reader.read(65536)
                    if not data:
                        if not self._closing.is_set():
                            LOG.info("evapi closed by kamailio host=%s port=%s", self.host, self.port)
                        break
                    for frame in decoder.feed(data):
                        try:
                            event = parse_event(frame)
                        except KamailioProtocolError as exc:
                            LOG.warning("evapi bad event error=%s frame=%r", exc, frame[:200])
                            continue
                        yield event
                    if decoder.broken is not None:
                        raise KamailioProtocolError(decoder.broken)
            except KamailioProtocolError as exc:
                LOG.warning("evapi stream garbled, reconnecting error=%s", exc)
            except OSError as exc:
                LOG.info("evapi connection lost error=%r", exc)
            finally:
                self._connected.clear()
                self._writer = None
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            if not self._closing.is_set():
                await self._pause(backoff)
                backoff = min(backoff * 2, self.backoff_max)
