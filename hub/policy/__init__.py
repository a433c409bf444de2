"""The contact policy: one explainable rule set deciding when a customer may be called (pure)."""

from hub.policy.clock import first_instant, local, zone_for_phone, zone_named
from hub.policy.decision import ContactFacts, Decision, Reason, blockers, customer_zone, decide, inside_window
from hub.policy.rules import (
    DEFAULT_POLICY_JSON,
    DEMO_POLICY_JSON,
    CallingWindow,
    Caps,
    ContactPolicy,
    PolicyError,
    parse_policy,
    policy_json,
    windows_meet,
)

__all__ = [
    "DEFAULT_POLICY_JSON",
    "DEMO_POLICY_JSON",
    "CallingWindow",
    "Caps",
    "ContactFacts",
    "ContactPolicy",
    "Decision",
    "PolicyError",
    "Reason",
    "blockers",
    "customer_zone",
    "decide",
    "first_instant",
    "inside_window",
    "local",
    "parse_policy",
    "policy_json",
    "windows_meet",
    "zone_for_phone",
    "zone_named",
]
