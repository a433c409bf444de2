"""The JSON contract between Lineup's hub and Kamailio, without I/O.

Kamailio (``telephony/kamailio/kamailio.cfg``) speaks to the hub in three ways:

* routing query: ``POST <hub>/gateway/kamailio/route`` with a JSON body (``parse_route_query``);
  the hub answers ``route_answer(...)`` or ``reject_answer(...)`` as JSON;
* events: ``POST <hub>/gateway/kamailio/event`` and, identically, netstring-framed JSON on the evapi
  TCP port (``parse_event``, ``NetstringDecoder``);
* JSON-RPC 2.0 over HTTP at ``http://<host>:<rpc_port>/RPC`` for click-to-call (``dlg.bridge_dlg``),
  the dialog list (``dlg.list``) and registrations (``ul.dump``): request builders and parsers here.

Kamailio 5.6 quirks handled here: an unset dialog variable arrives as the string ``"<null>"``;
numbers set from headers or variables may arrive as strings; ``dialog:failed`` always has code 0.
Everything here is pure: no sockets, no asyncio.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DIALOG_STATES",
    "EVENT_NAMES",
    "KamailioEvent",
    "KamailioProtocolError",
    "KamailioRpcError",
    "LiveDialog",
    "NetstringDecoder",
    "RegisteredAor",
    "RegisteredContact",
    "RouteQuery",
    "bridge_request",
    "dlg_list_request",
    "encode_netstring",
    "event_key",
    "parse_dlg_list",
    "parse_event",
    "parse_route_query",
    "parse_rpc_response",
    "parse_ul_dump",
    "reject_answer",
    "route_answer",
    "rpc_request",
    "ul_dump_request",
]

# Kamailio's placeholder for an unset variable, normalised to None like an empty string.
NULL_MARKER = "<null>"

EVENT_NAMES = frozenset({"ringing", "answered", "agent_failed", "abandoned", "failed", "ended", "register"})

# Events that can happen more than once per call (once per routing attempt).
PER_ATTEMPT_EVENTS = frozenset({"ringing", "agent_failed"})

# dlg.list "state" values (Kamailio dialog module).
DIALOG_STATES = {1: "unconfirmed", 2: "early", 3: "confirmed_na", 4: "confirmed", 5: "deleted"}
DIALOG_DELETED = 5

# The From user of dlg.bridge_dlg's controller (modparam dialog bridge_controller in the cfg).
BRIDGE_CONTROLLER_USER = "c2c"


class KamailioProtocolError(ValueError):
    """A message from (or for) Kamailio does not follow the contract."""


class KamailioRpcError(KamailioProtocolError):
    """Kamailio answered a JSON-RPC request with an error object."""

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(f"JSON-RPC error {code}: {message}")
        self.code = code
        self.message = message


# ---------------------------------------------------------------------------------------------
# field helpers


def _load_object(body: bytes | bytearray | str | Mapping[str, Any], what: str) -> Mapping[str, Any]:
    """Decode a JSON object body, or pass through an already decoded mapping."""
    if isinstance(body, Mapping):
        return body
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KamailioProtocolError(f"{what}: body is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise KamailioProtocolError(f"{what}: body must be a JSON object, got {type(data).__name__}")
    return data


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() in ("", NULL_MARKER))


def _opt_str(data: Mapping[str, Any], key: str, what: str) -> str | None:
    value = data.get(key)
    if _is_null(value):
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise KamailioProtocolError(f"{what}: field {key!r} must be a string, got {type(value).__name__}")
    # Kamailio sends user parts as strings, but a hand-written body may carry 1001 as a number.
    return str(value)


def _req_str(data: Mapping[str, Any], key: str, what: str) -> str:
    value = _opt_str(data, key, what)
    if value is None:
        raise KamailioProtocolError(f"{what}: missing field {key!r}")
    return value


def _opt_float(data: Mapping[str, Any], key: str, what: str) -> float | None:
    value = data.get(key)
    if _is_null(value):
        return None
    if isinstance(value, bool):
        raise KamailioProtocolError(f"{what}: field {key!r} must be a number, got a boolean")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise KamailioProtocolError(f"{what}: field {key!r} is not a number: {value!r}") from None
    else:
        raise KamailioProtocolError(f"{what}: field {key!r} must be a number, got {type(value).__name__}")
    if not math.isfinite(number):
        raise KamailioProtocolError(f"{what}: field {key!r} is not a finite number: {value!r}")
    return number


def _opt_int(data: Mapping[str, Any], key: str, what: str) -> int | None:
    number = _opt_float(data, key, what)
    if number is None:
        return None
    if not number.is_integer():
        raise KamailioProtocolError(f"{what}: field {key!r} must be a whole number: {data.get(key)!r}")
    return int(number)


def _req_int(data: Mapping[str, Any], key: str, what: str) -> int:
    value = _opt_int(data, key, what)
    if value is None:
        raise KamailioProtocolError(f"{what}: missing field {key!r}")
    return value


# ---------------------------------------------------------------------------------------------
# routing query and answers


@dataclass(frozen=True, slots=True)
class RouteQuery:
    """Kamailio asks which agent takes an inbound call (again after an agent failed)."""

    call_id: str
    caller: str  # the From user: the customer's number as the carrier sent it
    did: str  # the dialled number (R-URI user; older bodies: the To user)
    attempt: int  # 1 for the first query of a call, +1 per re-query
    failed_agent: str | None = None  # on a re-query: the agent extension that just failed ...
    failed_code: int | None = None  # ... and its SIP code (404 = not registered, 408, 486, ...)
    source: str | None = None  # "ip:port" the INVITE came from (the carrier)
    kam_ts: float | None = None  # Kamailio's clock when it asked
    from_uri: str | None = None
    ruri: str | None = None


def parse_route_query(body: bytes | bytearray | str | Mapping[str, Any]) -> RouteQuery:
    """Parse the body of ``POST /gateway/kamailio/route``; raises ``KamailioProtocolError``."""
    what = "route query"
    data = _load_object(body, what)
    did = _opt_str(data, "did", what) or _opt_str(data, "to_user", what)
    if did is None:
        raise KamailioProtocolError(f"{what}: missing field 'did' (or 'to_user')")
    attempt = _req_int(data, "attempt", what)
    if attempt < 1:
        raise KamailioProtocolError(f"{what}: 'attempt' must be >= 1, got {attempt}")
    failed_agent = _opt_str(data, "failed_agent", what)
    failed_code = _opt_int(data, "failed_code", what)
    if failed_code is not None and not 100 <= failed_code <= 699:
        raise KamailioProtocolError(f"{what}: 'failed_code' is not a SIP code: {failed_code}")
    return RouteQuery(
        call_id=_req_str(data, "call_id", what),
        caller=_req_str(data, "from_user", what),
        did=did,
        attempt=attempt,
        failed_agent=failed_agent,
        failed_code=failed_code,
        source=_opt_str(data, "source", what),
        kam_ts=_opt_float(data, "kam_ts", what),
        from_uri=_opt_str(data, "from_uri", what),
        ruri=_opt_str(data, "ruri", what),
    )


def _clean_token(value: str, name: str) -> str:
    # These strings end up in SIP messages (reason phrase, R-URI): a line break would inject headers.
    if not value or any(c in value for c in "\r\n\0"):
        raise ValueError(f"{name} must be a non-empty single line, got {value!r}")
    return value


def route_answer(agent_extension: str, target_uri: str, ring_timeout: int) -> dict[str, Any]:
    """The hub's answer that sends the call to an agent's phone.

    ``target_uri`` is normally ``sip:<extension>@<kamailio host>:<sip port>`` (Kamailio looks the
    phone up among registrations; not registered -> it re-queries with ``failed_code`` 404), or a
    phone's own contact URI. ``ring_timeout`` is whole seconds (Kamailio multiplies it by 1000).
    """
    _clean_token(agent_extension, "agent_extension")
    if not _clean_token(target_uri, "target_uri").startswith(("sip:", "sips:")):
        raise ValueError(f"target_uri must be a SIP URI, got {target_uri!r}")
    if isinstance(ring_timeout, bool) or not isinstance(ring_timeout, int) or not 1 <= ring_timeout <= 600:
        raise ValueError(f"ring_timeout must be whole seconds in 1..600, got {ring_timeout!r}")
    return {
        "action": "route",
        "agent_id": agent_extension,
        "target": target_uri,
        "ring_timeout": ring_timeout,
    }


def reject_answer(code: int = 480, reason: str = "No Agent Available") -> dict[str, Any]:
    """The hub's answer that rejects the call; Kamailio replies ``code reason`` to the carrier."""
    if isinstance(code, bool) or not isinstance(code, int) or not 400 <= code <= 699:
        raise ValueError(f"code must be a SIP failure code 400..699, got {code!r}")
    return {"action": "reject", "code": code, "reason": _clean_token(reason, "reason")}


# ---------------------------------------------------------------------------------------------
# events


@dataclass(frozen=True, slots=True)
class KamailioEvent:
    """One event from Kamailio (HTTP POST body or evapi frame), fields normalised.

    ``call_id`` is None only for ``register``. Times are Kamailio's epoch seconds.
    """

    event: str
    call_id: str | None
    agent_extension: str | None = None
    kam_ts: float | None = None
    seq: int | None = None  # instance-wide increasing counter (resets when Kamailio restarts)
    code: int | None = None  # ringing: 180/183; agent_failed: 408/486/...; failed: always 0 (quirk)
    attempt: int | None = None  # ringing / agent_failed / abandoned: the routing attempt
    caller: str | None = None  # customer number; "c2c" on the first leg of a dlg.bridge_dlg call
    did: str | None = None
    duration_s: float | None = None  # ended: whole seconds since the dialog started
    answered_at: float | None = None  # answered / ended: exact talk time = kam_ts - answered_at
    start_ts: float | None = None
    ended_by: str | None = None  # ended: From URI of the BYE, or "kamailio" (timeout, dlg.end_dlg)
    ended_side: str | None = None  # ended: "caller", "callee" or "kamailio"
    from_uri: str | None = None
    to_uri: str | None = None
    aor: str | None = None  # register
    contact: str | None = None  # register
    expires: int | None = None  # register: 0 = unregistered
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def talk_s(self) -> float | None:
        """Exact talk time of an ``ended`` event (kam_ts - answered_at), when both are known."""
        if self.event != "ended" or self.kam_ts is None or self.answered_at is None:
            return None
        return max(0.0, self.kam_ts - self.answered_at)

    @property
    def is_bridge_leg(self) -> bool:
        """True for events of the controller leg of a ``dlg.bridge_dlg`` click-to-call."""
        return self.caller == BRIDGE_CONTROLLER_USER


def parse_event(body: bytes | bytearray | str | Mapping[str, Any]) -> KamailioEvent:
    """Parse an event body (HTTP or one evapi frame); raises ``KamailioProtocolError``."""
    what = "event"
    data = _load_object(body, what)
    name = _req_str(data, "event", what)
    if name not in EVENT_NAMES:
        raise KamailioProtocolError(f"{what}: unknown event {name!r}")
    what = f"{name} event"
    call_id = _opt_str(data, "call_id", what)
    aor = _opt_str(data, "aor", what)
    if name == "register":
        if aor is None:
            raise KamailioProtocolError(f"{what}: missing field 'aor'")
    elif call_id is None:
        raise KamailioProtocolError(f"{what}: missing field 'call_id'")
    return KamailioEvent(
        event=name,
        call_id=call_id,
        agent_extension=_opt_str(data, "agent_id", what),
        kam_ts=_opt_float(data, "kam_ts", what),
        seq=_opt_int(data, "seq", what),
        code=_opt_int(data, "code", what),
        attempt=_opt_int(data, "attempt", what),
        caller=_opt_str(data, "caller", what),
        did=_opt_str(data, "did", what),
        duration_s=_opt_float(data, "duration_s", what),
        answered_at=_opt_float(data, "answered_at", what),
        start_ts=_opt_float(data, "start_ts", what),
        ended_by=_opt_str(data, "ended_by", what),
        ended_side=_opt_str(data, "ended_side", what),
        from_uri=_opt_str(data, "from_uri", what),
        to_uri=_opt_str(data, "to_uri", what),
        aor=aor,
        contact=_opt_str(data, "contact", what),
        expires=_opt_int(data, "expires", what),
        raw=dict(data),
    )


def event_key(ev: KamailioEvent) -> tuple[str, str]:
    """Idempotency key: the same event delivered twice (HTTP and evapi, retries) has the same key.

    ``(call_id, event)`` for once-per-call events. ``ringing`` and ``agent_failed`` happen once per
    routing attempt, so their name is qualified: ``(call_id, "agent_failed#2")`` (by agent when the
    attempt is unknown: ``"agent_failed:1002"``). ``register`` has no call: ``(aor, "register#<seq>")``.
    """
    if ev.event == "register":
        stamp = ev.seq if ev.seq is not None else ev.kam_ts
        return (ev.aor or "", f"register#{stamp}")
    name = ev.event
    if name in PER_ATTEMPT_EVENTS:
        if ev.attempt is not None:
            name = f"{name}#{ev.attempt}"
        elif ev.agent_extension is not None:
            name = f"{name}:{ev.agent_extension}"
    return (ev.call_id or "", name)


# ---------------------------------------------------------------------------------------------
# netstrings (evapi framing: b"<length>:<payload>,")


def encode_netstring(payload: bytes) -> bytes:
    """Frame ``payload`` as a netstring."""
    return b"%d:%s," % (len(payload), payload)


class NetstringDecoder:
    """Incremental netstring decoder for the evapi stream.

    ``feed`` returns the complete payloads so far; partial frames wait for more bytes. A garbled or
    oversized frame leaves the decoder unusable (the stream has lost its framing: reconnect and
    start a new decoder): ``feed`` raises ``KamailioProtocolError`` at once if it found no frame
    before the garbage, else it returns those frames, sets ``broken`` and raises on the next call.
    Whitespace between frames is skipped.
    """

    def __init__(self, max_frame: int = 1 << 20) -> None:
        if max_frame < 1:
            raise ValueError("max_frame must be positive")
        self.max_frame = max_frame
        self._max_digits = len(str(max_frame))
        self._buf = bytearray()
        self._broken: str | None = None

    @property
    def pending(self) -> int:
        """Bytes buffered of an incomplete frame."""
        return len(self._buf)

    @property
    def broken(self) -> str | None:
        """Why the stream lost its framing, or None while it is fine."""
        return self._broken

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes from the stream; return every payload completed by them, in order."""
        if self._broken is not None:
            raise KamailioProtocolError(f"netstring stream already broken: {self._broken}")
        self._buf += data
        frames: list[bytes] = []
        buf = self._buf
        pos = 0
        try:
            while True:  # _fail() raises out of the loop
                while pos < len(buf) and buf[pos] in b" \t\r\n":
                    pos += 1
                if pos >= len(buf):
                    break
                colon = buf.find(b":", pos, pos + self._max_digits + 1)
                if colon < 0:
                    digits = bytes(buf[pos : pos + self._max_digits + 1])
                    if not digits.isdigit():
                        self._fail(f"bad length prefix {digits[:20]!r}")
                    if len(digits) > self._max_digits:
                        self._fail(f"length prefix {digits!r}... exceeds max_frame={self.max_frame}")
                    break  # length prefix still arriving
                digits = bytes(buf[pos:colon])
                if not digits.isdigit() or (len(digits) > 1 and digits[0:1] == b"0"):
                    self._fail(f"bad length prefix {digits[:20]!r}")
                length = int(digits)
                if length > self.max_frame:
                    self._fail(f"frame of {length} bytes exceeds max_frame={self.max_frame}")
                end = colon + 1 + length
                if len(buf) < end + 1:
                    break  # payload or trailing comma still arriving
                if buf[end] != ord(","):
                    self._fail(f"frame of {length} bytes not terminated by ','")
                frames.append(bytes(buf[colon + 1 : end]))
                pos = end + 1
        except KamailioProtocolError:
            if not frames:
                raise
            # Deliver what was complete before the garbage; the next feed() raises.
        finally:
            del buf[:pos]
        return frames

    def _fail(self, reason: str) -> None:
        self._broken = reason
        raise KamailioProtocolError(f"garbled netstring stream: {reason}")


# ---------------------------------------------------------------------------------------------
# JSON-RPC 2.0 (Kamailio jsonrpcs over xhttp)


def rpc_request(method: str, params: Sequence[Any] | None, request_id: int) -> dict[str, Any]:
    """A JSON-RPC 2.0 request object."""
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
    if params is not None:
        body["params"] = list(params)
    return body


def bridge_request(agent_uri: str, customer_uri: str, proxy_uri: str, request_id: int) -> dict[str, Any]:
    """``dlg.bridge_dlg``: Kamailio calls ``agent_uri`` via ``proxy_uri``, then REFERs it to the customer."""
    for name, uri in (("agent_uri", agent_uri), ("customer_uri", customer_uri), ("proxy_uri", proxy_uri)):
        if not _clean_token(uri, name).startswith(("sip:", "sips:")):
            raise ValueError(f"{name} must be a SIP URI, got {uri!r}")
    return rpc_request("dlg.bridge_dlg", [agent_uri, customer_uri, proxy_uri], request_id)


def dlg_list_request(request_id: int) -> dict[str, Any]:
    """``dlg.list``: every dialog Kamailio tracks."""
    return rpc_request("dlg.list", None, request_id)


def ul_dump_request(request_id: int) -> dict[str, Any]:
    """``ul.dump``: every registered AoR with its contacts."""
    return rpc_request("ul.dump", None, request_id)


def parse_rpc_response(
    body: bytes | bytearray | str | Mapping[str, Any], request_id: int | None = None
) -> Any:
    """The ``result`` of a JSON-RPC response; ``KamailioRpcError`` for an error object.

    Kamailio answers an unparsable request with an empty body: that is a protocol error too.
    """
    what = "JSON-RPC response"
    if isinstance(body, bytes | bytearray | str) and not body.strip():
        raise KamailioProtocolError(f"{what}: empty body")
    data = _load_object(body, what)
    if request_id is not None and "id" in data and data["id"] != request_id:
        raise KamailioProtocolError(f"{what}: id {data['id']!r} does not match request id {request_id}")
    error = data.get("error")
    if error is not None:
        if isinstance(error, Mapping):
            code = error.get("code")
            raise KamailioRpcError(
                code if isinstance(code, int) else None, str(error.get("message") or "unknown error")
            )
        raise KamailioRpcError(None, str(error))
    if "result" not in data:
        raise KamailioProtocolError(f"{what}: neither 'result' nor 'error'")
    return data["result"]


@dataclass(frozen=True, slots=True)
class LiveDialog:
    """One dialog from ``dlg.list``."""

    call_id: str
    state: int
    caller: str  # From URI
    callee: str  # To URI
    h_entry: int | None = None  # with h_id: the handle for dlg.end_dlg
    h_id: int | None = None
    start_ts: int | None = None  # None until answered
    init_ts: int | None = None
    caller_contact: str | None = None
    callee_contact: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)

    @property
    def state_name(self) -> str:
        return DIALOG_STATES.get(self.state, f"state{self.state}")

    @property
    def agent_extension(self) -> str | None:
        """The agent of the call as the cfg recorded it (dialog variable agent_id)."""
        return self.variables.get("agent_id")

    @property
    def answered(self) -> bool:
        return self.state == 4 or (self.state == 3 and self.start_ts is not None)


def _dialog_side(entry: Mapping[str, Any], side: str) -> str | None:
    leg = entry.get(side)
    if isinstance(leg, Mapping):
        contact = leg.get("contact")
        return contact if isinstance(contact, str) and not _is_null(contact) else None
    return None


def parse_dlg_list(result: Any, *, include_deleted: bool = False) -> list[LiveDialog]:
    """Dialogs from a ``dlg.list`` result (the ``result`` member, a list).

    Ended dialogs linger a while in state 5 ("deleted"); they are left out unless asked for.
    """
    what = "dlg.list result"
    if isinstance(result, Mapping) and not result:
        return []  # some Kamailio versions answer {} when there is no dialog
    if not isinstance(result, list):
        raise KamailioProtocolError(f"{what}: expected a list, got {type(result).__name__}")
    dialogs: list[LiveDialog] = []
    for entry in result:
        if not isinstance(entry, Mapping):
            raise KamailioProtocolError(f"{what}: entry is not an object: {entry!r}")
        state = _req_int(entry, "state", what)
        if state == DIALOG_DELETED and not include_deleted:
            continue
        variables: dict[str, str] = {}
        raw_vars = entry.get("variables") or []
        if isinstance(raw_vars, Mapping):
            raw_vars = [raw_vars]
        if not isinstance(raw_vars, list):
            raise KamailioProtocolError(f"{what}: 'variables' must be a list")
        for item in raw_vars:
            if isinstance(item, Mapping):
                for key, value in item.items():
                    if not _is_null(value):
                        variables[str(key)] = str(value)
        start_ts = _opt_int(entry, "start_ts", what)
        dialogs.append(
            LiveDialog(
                call_id=_req_str(entry, "call-id", what),
                state=state,
                caller=_req_str(entry, "from_uri", what),
                callee=_req_str(entry, "to_uri", what),
                h_entry=_opt_int(entry, "h_entry", what),
                h_id=_opt_int(entry, "h_id", what),
                start_ts=start_ts or None,  # 0 until the dialog is confirmed
                init_ts=_opt_int(entry, "init_ts", what) or None,
                caller_contact=_dialog_side(entry, "caller"),
                callee_contact=_dialog_side(entry, "callee"),
                variables=variables,
            )
        )
    return dialogs


@dataclass(frozen=True, slots=True)
class RegisteredContact:
    """One contact (phone) registered for an AoR."""

    address: str
    expires: int | None = None
    user_agent: str | None = None
    call_id: str | None = None


@dataclass(frozen=True, slots=True)
class RegisteredAor:
    """An address of record (the agent extension, as usrloc stores it) and its contacts."""

    aor: str
    contacts: tuple[RegisteredContact, ...] = ()


def parse_ul_dump(result: Any) -> list[RegisteredAor]:
    """Registered AoRs from a ``ul.dump`` result (full or ``brief``), in Kamailio's order."""
    what = "ul.dump result"
    if not isinstance(result, Mapping):
        raise KamailioProtocolError(f"{what}: expected an object, got {type(result).__name__}")
    domains = result.get("Domains")
    if not isinstance(domains, list):
        raise KamailioProtocolError(f"{what}: missing 'Domains' list")
    aors: list[RegisteredAor] = []
    for wrapper in domains:
        domain = wrapper.get("Domain") if isinstance(wrapper, Mapping) else None
        if not isinstance(domain, Mapping):
            raise KamailioProtocolError(f"{what}: malformed domain entry {wrapper!r}")
        entries = domain.get("AoRs") or []
        if not isinstance(entries, list):
            raise KamailioProtocolError(f"{what}: 'AoRs' must be a list")
        for entry in entries:
            # full dump: {"Info": {"AoR": ..., "Contacts": [{"Contact": {...}}]}}; brief: {"AoR": ...}
            info = entry.get("Info", entry) if isinstance(entry, Mapping) else None
            if not isinstance(info, Mapping):
                raise KamailioProtocolError(f"{what}: malformed AoR entry {entry!r}")
            contacts: list[RegisteredContact] = []
            for item in info.get("Contacts") or []:
                contact = item.get("Contact", item) if isinstance(item, Mapping) else None
                if not isinstance(contact, Mapping):
                    raise KamailioProtocolError(f"{what}: malformed contact {item!r}")
                try:
                    expires = _opt_int(contact, "Expires", what)
                except KamailioProtocolError:
                    expires = None  # "permanent" and other non-numbers: no expiry to report
                contacts.append(
                    RegisteredContact(
                        address=_req_str(contact, "Address", what),
                        expires=expires,
                        user_agent=_opt_str(contact, "User-Agent", what),
                        call_id=_opt_str(contact, "Call-ID", what),
                    )
                )
            aors.append(RegisteredAor(aor=_req_str(info, "AoR", what), contacts=tuple(contacts)))
    return aors
