"""Campaigns (lead pools): their kind, their agents and teams, and their contact settings.

A campaign is ``sales`` or ``tmk``. Its agents are the users listed in ``campaign_agents`` plus the
members of the teams in ``campaign_teams``; only active users whose role is the campaign's kind may
be listed, and only they work its leads (a sales agent in a team attached to a TMK campaign does
not).

Contact settings live in ``campaigns.settings`` (JSONB). Today's keys::

    {
        "description": str,                 # free text for people, at most 2,000 characters
        "handoff_campaign_id": int | None,  # TMK only: the sales campaign that receives the leads a
                                            # TMK agent books a trial lesson for
        "contact": {...},                   # the campaign's contact policy (caps, pauses, windows),
                                            # validated by the caller: hub.policy.parse_policy
    }

Keys this module does not know are kept as stored, never dropped by a save.

Every change is written to the audit log (``campaign_created``, ``campaign_updated``,
``campaign_members_set``) in the same transaction. No function here commits: the caller does, so a
page can save a campaign's settings and its members as one change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit
from storage.models import Campaign, CampaignAgent, CampaignTeam, Team, User

KINDS = ("sales", "tmk")
NAME_MAX = 100  # campaigns.name is varchar(100)
DESCRIPTION_MAX = 2000
MAX_MEMBERS = 10_000  # users or teams in one set_members call
_MAX_ID = 2**31 - 1  # campaigns, users and teams have integer keys


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a change was refused: a stable code and its facts (the page words it)."""

    code: str
    params: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        facts = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.code}({facts})" if facts else self.code


class CampaignError(ValueError):
    """A campaign change was refused for one or more :class:`Problem`. Nothing was changed.

    Codes and facts: ``name_missing``, ``name_too_long`` {max}, ``kind_invalid``,
    ``settings_unknown`` {keys}, ``description_not_text``, ``description_too_long`` {max},
    ``handoff_not_id``, ``handoff_not_tmk``, ``handoff_missing`` {id}, ``handoff_not_sales`` {name},
    ``ids_invalid`` {what}, ``too_many`` {what, max}, ``user_missing`` {id}, ``user_inactive``
    {name, username}, ``user_wrong_role`` {name, username, role, kind}, ``team_missing`` {id},
    ``kind_mismatch`` {name, kind, wanted}, ``not_found`` {id}.
    """

    def __init__(self, *problems: Problem) -> None:
        super().__init__("; ".join(map(str, problems)))
        self.problems = problems


class CampaignNotFound(CampaignError):
    """There is no campaign with that id."""

    def __init__(self, campaign_id: int) -> None:
        super().__init__(Problem("not_found", {"id": campaign_id}))
        self.campaign_id = campaign_id


def _refuse(code: str, **params: Any) -> CampaignError:
    return CampaignError(Problem(code, params))


@dataclass(frozen=True, slots=True)
class CampaignSummary:
    """One campaign as the list shows it, with its membership and open-lead counts."""

    id: int
    name: str
    kind: str
    active: bool
    settings: dict[str, Any]
    created_at: datetime
    members: int  # agents listed directly
    teams: int  # teams listed
    open_leads: int  # not deleted and not closed

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "active": self.active,
            "settings": self.settings,
            "created_at": self.created_at.isoformat(),
            "members": self.members,
            "teams": self.teams,
            "open_leads": self.open_leads,
        }


@dataclass(frozen=True, slots=True)
class TeamChoice:
    """A team that can be attached to a campaign, with its number of active agents of each kind."""

    id: int
    name: str
    sales: int
    tmk: int


# --- reading -----------------------------------------------------------------------------------


async def list_campaigns(session: AsyncSession) -> list[CampaignSummary]:
    """Every campaign by name, with its direct members, teams and open leads counted."""
    rows = await session.execute(
        text(
            "SELECT c.id, c.name, c.kind, c.active, c.settings, c.created_at,"
            " (SELECT count(*) FROM campaign_agents a WHERE a.campaign_id = c.id) AS members,"
            " (SELECT count(*) FROM campaign_teams t WHERE t.campaign_id = c.id) AS teams,"
            " (SELECT count(*) FROM leads l WHERE l.campaign_id = c.id"
            "   AND l.deleted_at IS NULL AND l.status <> 'closed') AS open_leads"
            " FROM campaigns c ORDER BY c.name"
        )
    )
    return [CampaignSummary(**r._mapping) for r in rows]


async def get_campaign(session: AsyncSession, campaign_id: int) -> Campaign | None:
    """The campaign with this id, or None (also for ids no campaign can have)."""
    if not 0 < campaign_id <= _MAX_ID:
        return None
    return await session.get(Campaign, campaign_id)


async def members_of(session: AsyncSession, campaign_id: int) -> tuple[list[int], list[int]]:
    """The campaign's directly listed user ids and its team ids, each ascending."""
    users = await session.execute(
        select(CampaignAgent.user_id)
        .where(CampaignAgent.campaign_id == campaign_id)
        .order_by(CampaignAgent.user_id)
    )
    teams = await session.execute(
        select(CampaignTeam.team_id)
        .where(CampaignTeam.campaign_id == campaign_id)
        .order_by(CampaignTeam.team_id)
    )
    return list(users.scalars()), list(teams.scalars())


async def eligible_agents(session: AsyncSession, kind: str) -> list[User]:
    """Active users who may join a campaign of this kind (role = kind), by name."""
    return list(
        (
            await session.execute(
                select(User)
                .where(User.role == kind, User.active.is_(True))
                .order_by(User.display_name, User.username)
            )
        ).scalars()
    )


async def team_choices(session: AsyncSession) -> list[TeamChoice]:
    """Every team by name, with how many active sales and TMK agents it has."""
    rows = await session.execute(
        text(
            "SELECT t.id, t.name,"
            " count(u.id) FILTER (WHERE u.role = 'sales') AS sales,"
            " count(u.id) FILTER (WHERE u.role = 'tmk') AS tmk"
            " FROM teams t LEFT JOIN users u ON u.team_id = t.id AND u.active"
            " GROUP BY t.id ORDER BY t.name"
        )
    )
    return [TeamChoice(**r._mapping) for r in rows]


async def campaigns_of_agent(session: AsyncSession, user_id: int) -> list[int]:
    """Ids of the active campaigns this agent works: listed directly or through their team.

    Only campaigns whose kind is the agent's role count, and none for an inactive user.
    """
    rows = await session.execute(
        text(
            "SELECT c.id FROM campaigns c JOIN users u ON u.id = :user"
            " WHERE c.active AND u.active AND c.kind = u.role AND ("
            "   EXISTS (SELECT 1 FROM campaign_agents a"
            "           WHERE a.campaign_id = c.id AND a.user_id = u.id)"
            "   OR EXISTS (SELECT 1 FROM campaign_teams t"
            "              WHERE t.campaign_id = c.id AND t.team_id = u.team_id))"
            " ORDER BY c.id"
        ),
        {"user": user_id},
    )
    return list(rows.scalars())


# --- settings ----------------------------------------------------------------------------------


async def validate_settings(
    session: AsyncSession, kind: str, settings: dict[str, Any] | None
) -> dict[str, Any]:
    """Today's contact settings, checked and normalised; raises :class:`CampaignError`.

    ``description`` is stripped text; ``handoff_campaign_id`` must name an existing sales
    campaign and is only for TMK campaigns. Unknown keys are refused so a typo is not stored.
    """
    settings = dict(settings or {})
    unknown = sorted(set(settings) - {"description", "handoff_campaign_id", "contact"})
    if unknown:
        raise _refuse("settings_unknown", keys=unknown)
    clean: dict[str, Any] = {}
    if "description" in settings:
        description = settings["description"]
        if description is None:
            description = ""
        if not isinstance(description, str):
            raise _refuse("description_not_text")
        if len(description.strip()) > DESCRIPTION_MAX:
            raise _refuse("description_too_long", max=DESCRIPTION_MAX)
        clean["description"] = description.strip()
    if "handoff_campaign_id" in settings:
        clean["handoff_campaign_id"] = await _handoff(session, kind, settings["handoff_campaign_id"])
    if "contact" in settings:
        if not isinstance(settings["contact"], dict):
            raise _refuse("contact_not_object")
        clean["contact"] = settings["contact"]
    return clean


async def _handoff(session: AsyncSession, kind: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _refuse("handoff_not_id")
    if kind != "tmk":
        raise _refuse("handoff_not_tmk")
    target = await get_campaign(session, value)
    if target is None:
        raise _refuse("handoff_missing", id=value)
    if target.kind != "sales":
        raise _refuse("handoff_not_sales", name=target.name)
    return target.id


def _name(value: str) -> str:
    name = value.strip() if isinstance(value, str) else ""
    if not name:
        raise _refuse("name_missing")
    if len(name) > NAME_MAX:
        raise _refuse("name_too_long", max=NAME_MAX)
    return name


def _kind(value: str) -> str:
    if value not in KINDS:
        raise _refuse("kind_invalid")
    return value


def _target(campaign_id: int) -> str:
    return f"campaign:{campaign_id}"


# --- changing ----------------------------------------------------------------------------------


async def create_campaign(
    session: AsyncSession,
    name: str,
    kind: str,
    settings: dict[str, Any] | None = None,
    *,
    actor_id: int | None,
    ip: str = "",
) -> Campaign:
    """Add a campaign (audited ``campaign_created``). Does not commit.

    Raises :class:`CampaignError` for a bad name, kind or settings, and SQLAlchemy's
    ``IntegrityError`` when another campaign has this name (the session then needs a rollback).
    """
    name, kind = _name(name), _kind(kind)
    clean = await validate_settings(session, kind, settings)
    campaign = Campaign(name=name, kind=kind, settings=clean, active=True)
    session.add(campaign)
    await session.flush()
    await audit.record(
        session,
        actor_id=actor_id,
        action="campaign_created",
        target=_target(campaign.id),
        detail={"name": name, "kind": kind, "settings": clean},
        ip=ip,
    )
    return campaign


async def update_campaign(
    session: AsyncSession,
    campaign_id: int,
    name: str,
    active: bool,
    settings: dict[str, Any] | None = None,
    *,
    actor_id: int | None,
    ip: str = "",
) -> Campaign:
    """Rename, (de)activate and set contact settings (audited ``campaign_updated``). Does not commit.

    ``settings`` keys are validated and merged over the stored ones, so keys not given keep their
    value. The kind never changes: leads and members were chosen for it. Raises
    :class:`CampaignNotFound`, :class:`CampaignError`, or ``IntegrityError`` for a taken name.
    """
    campaign = await _locked(session, campaign_id)
    name = _name(name)
    clean = await validate_settings(session, campaign.kind, settings)
    before = {"name": campaign.name, "active": campaign.active, "settings": dict(campaign.settings)}
    merged = {**campaign.settings, **clean}
    campaign.name, campaign.active, campaign.settings = name, bool(active), merged
    await session.flush()
    after = {"name": name, "active": bool(active), "settings": merged}
    changed = {key: {"from": before[key], "to": after[key]} for key in after if before[key] != after[key]}
    await audit.record(
        session,
        actor_id=actor_id,
        action="campaign_updated",
        target=_target(campaign.id),
        detail={"changed": changed},
        ip=ip,
    )
    return campaign


async def set_members(
    session: AsyncSession,
    campaign_id: int,
    user_ids: Iterable[int],
    team_ids: Iterable[int],
    *,
    actor_id: int | None,
    ip: str = "",
) -> tuple[list[int], list[int]]:
    """Replace the campaign's agents and teams (audited ``campaign_members_set``). Does not commit.

    Every user must exist, be active and have the campaign's kind as role (a sales campaign takes
    sales agents, a TMK campaign TMK agents); every team must exist. Otherwise nothing changes and
    :class:`CampaignError` names each refused id and why. Concurrent calls for one campaign queue
    on its row. Returns the stored (user ids, team ids), ascending.
    """
    users, teams = _ids(user_ids, "user"), _ids(team_ids, "team")
    campaign = await _locked(session, campaign_id)
    problems = await _user_problems(session, campaign, users) + await _team_problems(session, teams)
    if problems:
        raise CampaignError(*problems)
    before_users, before_teams = await members_of(session, campaign.id)
    await session.execute(delete(CampaignAgent).where(CampaignAgent.campaign_id == campaign.id))
    await session.execute(delete(CampaignTeam).where(CampaignTeam.campaign_id == campaign.id))
    if users:
        await session.execute(
            insert(CampaignAgent), [{"campaign_id": campaign.id, "user_id": u} for u in users]
        )
    if teams:
        await session.execute(
            insert(CampaignTeam), [{"campaign_id": campaign.id, "team_id": t} for t in teams]
        )
    await audit.record(
        session,
        actor_id=actor_id,
        action="campaign_members_set",
        target=_target(campaign.id),
        detail={
            "user_ids": users,
            "team_ids": teams,
            "users_added": sorted(set(users) - set(before_users)),
            "users_removed": sorted(set(before_users) - set(users)),
            "teams_added": sorted(set(teams) - set(before_teams)),
            "teams_removed": sorted(set(before_teams) - set(teams)),
        },
        ip=ip,
    )
    return users, teams


async def campaign_named(
    session: AsyncSession, name: str, kind: str, *, actor_id: int | None = None
) -> Campaign:
    """The campaign called ``name``, created with ``kind`` if missing. Does not commit.

    Safe when several sessions call it at once: the unique name decides (a second creator waits
    for the first to commit, then reads its row). A creation is audited ``campaign_created``.
    Raises :class:`CampaignError` if the existing campaign has another kind.
    """
    name, kind = _name(name), _kind(kind)
    created = (
        await session.execute(
            pg_insert(Campaign)
            .values(name=name, kind=kind)
            .on_conflict_do_nothing(index_elements=[Campaign.name])
            .returning(Campaign.id)
        )
    ).scalar_one_or_none()
    if created is not None:
        await audit.record(
            session,
            actor_id=actor_id,
            action="campaign_created",
            target=_target(created),
            detail={"name": name, "kind": kind, "settings": {}},
        )
    campaign = (
        await session.execute(
            select(Campaign).where(Campaign.name == name).execution_options(populate_existing=True)
        )
    ).scalar_one()
    if campaign.kind != kind:
        raise _refuse("kind_mismatch", name=name, kind=campaign.kind, wanted=kind)
    return campaign


# --- checks ------------------------------------------------------------------------------------


async def _locked(session: AsyncSession, campaign_id: int) -> Campaign:
    campaign = None
    if 0 < campaign_id <= _MAX_ID:
        campaign = (
            await session.execute(
                select(Campaign)
                .where(Campaign.id == campaign_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).scalar_one_or_none()
    if campaign is None:
        raise CampaignNotFound(campaign_id)
    return campaign


def _ids(values: Iterable[int], what: str) -> list[int]:
    ids = list(values)
    if len(ids) > MAX_MEMBERS:
        raise _refuse("too_many", what=what, max=MAX_MEMBERS)
    if any(isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= _MAX_ID for v in ids):
        raise _refuse("ids_invalid", what=what)
    return sorted(set(ids))


async def _user_problems(session: AsyncSession, campaign: Campaign, user_ids: list[int]) -> list[Problem]:
    if not user_ids:
        return []
    # FOR SHARE: a role change or deactivation waits until this membership is stored.
    rows = await session.execute(
        select(User.id, User.username, User.display_name, User.role, User.active)
        .where(User.id.in_(user_ids))
        .with_for_update(read=True)
    )
    found = {r.id: r for r in rows}
    problems: list[Problem] = []
    for user_id in user_ids:
        user = found.get(user_id)
        if user is None:
            problems.append(Problem("user_missing", {"id": user_id}))
        elif not user.active:
            problems.append(Problem("user_inactive", {"name": user.display_name, "username": user.username}))
        elif user.role != campaign.kind:
            problems.append(
                Problem(
                    "user_wrong_role",
                    {
                        "name": user.display_name,
                        "username": user.username,
                        "role": user.role,
                        "kind": campaign.kind,
                    },
                )
            )
    return problems


async def _team_problems(session: AsyncSession, team_ids: list[int]) -> list[Problem]:
    if not team_ids:
        return []
    rows = await session.execute(select(Team.id).where(Team.id.in_(team_ids)).with_for_update(read=True))
    missing = sorted(set(team_ids) - set(rows.scalars()))
    return [Problem("team_missing", {"id": t}) for t in missing]
