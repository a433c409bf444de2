"""Allocation rules: who gets how many unowned leads, and which ones (pure, no I/O).

A plan is made in three steps, each a pure function so the preview and the commit agree exactly:

1. ``weights_for`` gives every eligible agent a weight: 1 each for an even split, or the weight of
   the agent's tier in the ratio (0 when the tier is not in it: such an agent gets nothing).
2. ``shares`` turns the weights into counts with the largest-remainder method, so each count is
   within one lead of the agent's exact proportional share and the counts add up to every lead.
3. ``deal`` shuffles the lead ids with a seeded ``random.Random`` and cuts the shuffled list into
   consecutive runs, so every agent gets the same mix of the file (not the first rows for agent 1).

Leftover: with at least one weighted agent every lead is dealt. Leads are left over only when no
agent has a weight (refused as an error by ``make_plan``) or when ``per_agent_cap`` stops the
agents from taking them all; left-over leads stay in the shared pool, where ready agents pull them.
"""

from __future__ import annotations

import enum
import hashlib
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

MAX_WEIGHT = 10_000
MAX_TIER_LENGTH = 8  # users.tier is VARCHAR(8)

_PART = re.compile(r"^\s*([A-Za-z0-9_-]{1,8})\s*[:=：]\s*([+-]?\d+)\s*$")
_SEPARATORS = re.compile(r"[,;，；、\n]+")


class Mode(enum.StrEnum):
    EVEN = "even"  # every eligible agent weighs the same
    RATIO = "ratio"  # agents weigh what their tier weighs in the ratio


class AllocationError(ValueError):
    """Input that cannot be allocated; ``code`` and ``params`` let a page translate ``message``."""

    def __init__(self, code: str, message: str, **params: object) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.params = params


@dataclass(frozen=True, slots=True)
class AgentWeight:
    agent_id: int
    weight: int


@dataclass(frozen=True, slots=True)
class AllocationRequest:
    """What the supervisor asked for: the mode, its ratio, and which leads and agents take part."""

    mode: Mode
    ratio: dict[str, int] = field(default_factory=dict)
    team_id: int | None = None
    batch_id: int | None = None
    per_agent_cap: int | None = None

    def ratio_text(self) -> str:
        """The ratio as people write it (``A:1, B:2``); empty for an even split."""
        return ", ".join(f"{tier}:{weight}" for tier, weight in self.ratio.items())


@dataclass(frozen=True, slots=True)
class Plan:
    """Who gets which leads. ``counts`` keeps the agents' order; zero-weight agents count 0."""

    seed: int
    lead_count: int
    counts: dict[int, int]
    assignments: dict[int, list[int]]
    fingerprint: str

    @property
    def allocated(self) -> int:
        return sum(self.counts.values())

    @property
    def leftover(self) -> int:
        return self.lead_count - self.allocated


def parse_ratio(text: str) -> dict[str, int]:
    """``"A:1, B:2"`` → ``{"A": 1, "B": 2}``; tiers are case-insensitive and kept upper-case.

    Parts are separated by commas, semicolons or new lines (ASCII or Chinese punctuation) and
    written ``TIER:WEIGHT`` or ``TIER=WEIGHT``. A weight is a whole number from 0 to MAX_WEIGHT;
    0 leaves that tier out on purpose, but at least one weight must be positive.
    Raises AllocationError with a message saying which part is wrong.
    """
    parts = [p for p in _SEPARATORS.split(text or "") if p.strip()]
    if not parts:
        raise AllocationError("ratio_empty", "Enter a ratio such as A:1, B:2.")
    ratio: dict[str, int] = {}
    for part in parts:
        match = _PART.match(part)
        if match is None:
            raise AllocationError(
                "ratio_format",
                f"“{part.strip()}” is not TIER:WEIGHT (for example A:1, B:2).",
                part=part.strip(),
            )
        tier, weight = match.group(1).upper(), int(match.group(2))
        if tier in ratio:
            raise AllocationError("ratio_duplicate", f"Tier {tier} appears twice in the ratio.", tier=tier)
        if weight < 0:
            raise AllocationError(
                "ratio_negative", f"The weight of tier {tier} cannot be negative.", tier=tier
            )
        if weight > MAX_WEIGHT:
            raise AllocationError(
                "ratio_too_big",
                f"The weight of tier {tier} is too large (at most {MAX_WEIGHT}).",
                tier=tier,
                max=MAX_WEIGHT,
            )
        ratio[tier] = weight
    if not any(ratio.values()):
        raise AllocationError("ratio_all_zero", "At least one tier needs a weight above 0.")
    return ratio


def _optional_id(fields: Mapping[str, object], name: str, code: str, what: str) -> int | None:
    value = fields.get(name)
    if value is None or (isinstance(value, str) and value.strip() in ("", "all")):
        return None
    if isinstance(value, bool):
        raise AllocationError(code, f"The {what} must be a number.")
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise AllocationError(code, f"The {what} must be a number.") from None
    if number <= 0:
        raise AllocationError(code, f"The {what} must be a positive number.")
    return number


def parse_request(fields: Mapping[str, object]) -> AllocationRequest:
    """Read a form or JSON body (``mode``, ``ratio``, ``team_id``, ``batch_id``, ``per_agent_cap``).

    The ratio is only read (and required) in ratio mode. Raises AllocationError.
    """
    try:
        mode = Mode(str(fields.get("mode") or Mode.EVEN.value).strip().lower())
    except ValueError:
        raise AllocationError("bad_mode", "Choose an even split or a tier ratio.") from None
    ratio: dict[str, int] = {}
    if mode is Mode.RATIO:
        raw = fields.get("ratio")
        if isinstance(raw, Mapping):  # JSON may send {"A": 1, "B": 2}
            raw = ", ".join(f"{k}:{v}" for k, v in raw.items())
        ratio = parse_ratio(raw if isinstance(raw, str) else "")
    return AllocationRequest(
        mode=mode,
        ratio=ratio,
        team_id=_optional_id(fields, "team_id", "bad_team", "team"),
        batch_id=_optional_id(fields, "batch_id", "bad_batch", "import batch"),
        per_agent_cap=_optional_id(fields, "per_agent_cap", "bad_cap", "limit per agent"),
    )


def weights_for(agents: Iterable[tuple[int, str]], request: AllocationRequest) -> list[AgentWeight]:
    """Each (agent id, tier) pair's weight under the request, in the given order."""
    if request.mode is Mode.EVEN:
        return [AgentWeight(agent_id, 1) for agent_id, _tier in agents]
    return [AgentWeight(agent_id, request.ratio.get(tier.upper(), 0)) for agent_id, tier in agents]


def _largest_remainder(total: int, agents: Sequence[AgentWeight]) -> dict[int, int]:
    """Hamilton's method: floors of the exact shares, then one more for the largest remainders.

    Integer arithmetic only, so no float rounding decides who gets the last lead; ties go to the
    agent listed first, which keeps the result reproducible.
    """
    weight_sum = sum(a.weight for a in agents)
    counts = {a.agent_id: 0 for a in agents}
    if weight_sum == 0 or total == 0:
        return counts
    remainders: list[tuple[int, int, int]] = []
    for position, agent in enumerate(agents):
        whole, remainder = divmod(total * agent.weight, weight_sum)
        counts[agent.agent_id] = whole
        remainders.append((-remainder, position, agent.agent_id))
    missing = total - sum(counts.values())
    for _remainder, _position, agent_id in sorted(remainders)[:missing]:
        counts[agent_id] += 1
    return counts


def shares(
    lead_count: int, agents: Sequence[AgentWeight], per_agent_cap: int | None = None
) -> dict[int, int]:
    """How many leads each agent gets, keyed by agent id in the agents' order.

    Without a cap the counts add up to ``lead_count`` (0 each when no agent has a weight) and each
    differs from the exact share ``lead_count * weight / total_weight`` by less than one lead.
    With ``per_agent_cap`` no count exceeds it: agents who would pass it get exactly the cap and
    the rest is shared again among the others by weight, so the counts add up to
    ``min(lead_count, cap × number of weighted agents)``. Zero-weight agents always get 0.
    """
    if lead_count < 0:
        raise ValueError("lead_count cannot be negative")
    if len({a.agent_id for a in agents}) != len(agents):
        raise ValueError("an agent is listed twice")
    if any(a.weight < 0 for a in agents):
        raise ValueError("weights cannot be negative")
    if per_agent_cap is not None and per_agent_cap < 0:
        raise ValueError("per_agent_cap cannot be negative")
    counts = {a.agent_id: 0 for a in agents}
    open_agents = [a for a in agents if a.weight > 0]
    if per_agent_cap is None:
        counts.update(_largest_remainder(lead_count, open_agents))
        return counts
    remaining = min(lead_count, per_agent_cap * len(open_agents))
    # Each round either settles every open agent or caps at least one, so it ends within n rounds;
    # what the capped agents cannot take is shared again among the others by weight.
    while open_agents and remaining > 0:
        round_counts = _largest_remainder(remaining, open_agents)
        capped = {a.agent_id for a in open_agents if round_counts[a.agent_id] >= per_agent_cap}
        if not capped:
            counts.update(round_counts)
            break
        for agent_id in capped:
            counts[agent_id] = per_agent_cap
        remaining -= per_agent_cap * len(capped)
        open_agents = [a for a in open_agents if a.agent_id not in capped]
    return counts


def deal(lead_ids: Sequence[int], counts: Mapping[int, int], rng: random.Random) -> dict[int, list[int]]:
    """Shuffle the leads with ``rng`` and give each agent its count, in the order of ``counts``.

    The result uses every lead at most once; leads beyond the counts' sum are not dealt.
    Raises ValueError when the counts ask for more leads than there are.
    """
    if any(n < 0 for n in counts.values()):
        raise ValueError("counts cannot be negative")
    if sum(counts.values()) > len(lead_ids):
        raise ValueError("the counts ask for more leads than there are")
    deck = list(lead_ids)
    rng.shuffle(deck)
    dealt: dict[int, list[int]] = {}
    start = 0
    for agent_id, n in counts.items():
        dealt[agent_id] = deck[start : start + n]
        start += n
    return dealt


def fingerprint(lead_ids: Iterable[int], weights: Iterable[AgentWeight]) -> str:
    """A short digest of the leads and weighted agents, to tell whether they changed since a preview."""
    digest = hashlib.sha256()
    for lead_id in sorted(lead_ids):
        digest.update(lead_id.to_bytes(8, "big", signed=True))
    digest.update(b"|")
    for agent in weights:
        digest.update(f"{agent.agent_id}:{agent.weight};".encode())
    return digest.hexdigest()[:16]


def make_plan(
    lead_ids: Sequence[int], weights: Sequence[AgentWeight], seed: int, per_agent_cap: int | None = None
) -> Plan:
    """The whole allocation for these leads and agents; the same inputs and seed give the same plan.

    ``lead_ids`` are sorted first, so the order a query returned them in does not change the deal.
    Raises AllocationError when there is nothing to allocate or nobody to allocate to.
    """
    if not lead_ids:
        raise AllocationError("no_leads", "There are no unowned leads to allocate.")
    if not weights:
        raise AllocationError("no_agents", "No active sales or telemarketing agent matches.")
    if not any(a.weight > 0 for a in weights):
        raise AllocationError("no_weighted_agents", "No matching agent has a tier in the ratio.")
    ordered = sorted(lead_ids)
    counts = shares(len(ordered), weights, per_agent_cap)
    return Plan(
        seed=seed,
        lead_count=len(ordered),
        counts=counts,
        assignments=deal(ordered, counts, random.Random(seed)),
        fingerprint=fingerprint(ordered, weights),
    )
