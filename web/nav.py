"""Navigation per role: each page appears only for roles allowed to open it."""

from __future__ import annotations

from dataclasses import dataclass

from hub.identity import Principal
from hub.permissions import Permission, allows
from web.i18n import _


@dataclass(frozen=True)
class Link:
    href: str
    label: str
    help: str
    permission: Permission
    current: bool = False


def _links() -> list[Link]:
    return [
        Link(
            "/agent",
            _("Workbench"),
            _("Take leads one at a time, call and record outcomes."),
            Permission.WORK_LEADS,
        ),
        Link(
            "/imports", _("Import leads"), _("Upload a CSV or Excel file of leads."), Permission.IMPORT_LEADS
        ),
        Link("/campaigns", _("Campaigns"), _("Lead pools, their agents and teams."), Permission.MANAGE_LEADS),
        Link(
            "/allocation",
            _("Allocate"),
            _("Share unowned leads among agents, evenly or by tier ratio."),
            Permission.MANAGE_LEADS,
        ),
        Link("/dnc", _("Do not call"), _("Numbers that must never be dialled."), Permission.MANAGE_LEADS),
        Link(
            "/callbacks", _("Callbacks"), _("Promised callbacks: see and move them."), Permission.MANAGE_LEADS
        ),
        Link(
            "/inbound-numbers",
            _("Inbound numbers"),
            _("The numbers customers call and the agents who answer them."),
            Permission.MANAGE_LEADS,
        ),
        Link(
            "/quotas",
            _("Quotas"),
            _("Daily new-lead caps and call targets, and how each agent stands today."),
            Permission.MANAGE_LEADS,
        ),
        Link(
            "/policies",
            _("Contact policies"),
            _("When, how often and after what customers may be called."),
            Permission.MANAGE_LEADS,
        ),
        Link(
            "/why-not",
            _("Why not?"),
            _("Whether a lead or number may be called now, and why not."),
            Permission.MANAGE_LEADS,
        ),
        Link(
            "/recycle-bin", _("Recycle bin"), _("Deleted leads: restore or purge."), Permission.MANAGE_LEADS
        ),
    ]


def nav_for(principal: Principal, path: str = "") -> list[Link]:
    # A page below a link's page (/policies/campaign/3 under /policies) still shows where one is.
    return [
        Link(
            link.href,
            link.label,
            link.help,
            link.permission,
            current=path == link.href or path.startswith(link.href + "/"),
        )
        for link in _links()
        if allows(principal.role, link.permission)
    ]
