"""Kamailio as Lineup's phone system: cfg template, the JSON contract, RPC/evapi I/O, a process lab.

* ``protocol`` - pure parsing/building of the hub <-> Kamailio JSON contract (no I/O);
* ``rpc`` - ``KamailioRpc`` (JSON-RPC over HTTP) and ``EvapiClient`` (event stream);
* ``lab`` - ``KamailioServer``: a real Kamailio process on loopback (cfg rendering, ports, probes);
* ``phones`` - ``SippPhone``, ``carrier_call``: sipp agent phones and carrier calls against it;
* ``kamailio.cfg`` and ``sipp/*.xml`` - the packaged templates those use.
"""

from telephony.kamailio.protocol import (
    KamailioEvent,
    KamailioProtocolError,
    KamailioRpcError,
    LiveDialog,
    NetstringDecoder,
    RegisteredAor,
    RouteQuery,
    event_key,
    parse_event,
    parse_route_query,
    reject_answer,
    route_answer,
)
from telephony.kamailio.rpc import EvapiClient, KamailioRpc

__all__ = [
    "EvapiClient",
    "KamailioEvent",
    "KamailioProtocolError",
    "KamailioRpc",
    "KamailioRpcError",
    "LiveDialog",
    "NetstringDecoder",
    "RegisteredAor",
    "RouteQuery",
    "event_key",
    "parse_event",
    "parse_route_query",
    "reject_answer",
    "route_answer",
]
