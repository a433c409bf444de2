"""Lineup telephony: gateway adapters behind one interface. Knows nothing of hub, web or storage."""

from telephony.gateway import CallEvent, CallEventKind, Gateway, GatewayError, OriginateRequest

__all__ = ["CallEvent", "CallEventKind", "Gateway", "GatewayError", "OriginateRequest"]
