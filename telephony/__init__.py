"""Lineup telephony: gateway adapters behind one interface. Knows nothing of hub, web or storage."""

from telephony.gateway import (
    CallEvent,
    CallEventKind,
    Gateway,
    GatewayError,
    InboundCall,
    OriginateRequest,
    RouteDecision,
    Router,
)

__all__ = [
    "CallEvent",
    "CallEventKind",
    "Gateway",
    "GatewayError",
    "InboundCall",
    "OriginateRequest",
    "RouteDecision",
    "Router",
]
