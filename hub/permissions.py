"""Roles and what each may do. Every HTTP route and websocket command names its permission."""

from __future__ import annotations

import enum

from storage.models import Role


class Permission(enum.StrEnum):
    WORK_LEADS = "work_leads"  # take leads, dial, dispose (agents)
    IMPORT_LEADS = "import_leads"
    MANAGE_LEADS = "manage_leads"  # allocate, campaigns, do-not-call lists, recycle bin
    PURGE_LEADS = "purge_leads"  # delete everything, purge the recycle bin (admin only)
    CONTROL_AGENTS = "control_agents"  # force pause / logout, see presence
    MANAGE_USERS = "manage_users"
    REVIEW_CALLS = "review_calls"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission) - {Permission.WORK_LEADS},
    Role.SUPERVISOR: frozenset(
        {Permission.IMPORT_LEADS, Permission.MANAGE_LEADS, Permission.CONTROL_AGENTS, Permission.REVIEW_CALLS}
    ),
    Role.SALES: frozenset({Permission.WORK_LEADS}),
    Role.TMK: frozenset({Permission.WORK_LEADS}),
    Role.QA: frozenset({Permission.REVIEW_CALLS}),
}


def allows(role: str, permission: Permission) -> bool:
    """Whether a user with this role has the permission (unknown roles have none)."""
    try:
        return permission in ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return False
