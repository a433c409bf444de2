"""User and team queries."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Team, User


async def by_username(session: AsyncSession, username: str) -> User | None:
    return (await session.execute(select(User).where(User.username == username))).scalar_one_or_none()


async def by_id(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def add_user(
    session: AsyncSession,
    *,
    username: str,
    display_name: str,
    password_hash: str,
    role: str,
    team_id: int | None = None,
    tier: str = "A",
    sip_extension: str | None = None,
) -> User:
    """Insert a user (commits). Raises IntegrityError when the name is taken."""
    user = User(
        username=username,
        display_name=display_name,
        password_hash=password_hash,
        role=role,
        team_id=team_id,
        tier=tier,
        sip_extension=sip_extension,
    )
    session.add(user)
    await session.commit()
    return user


async def team_named(session: AsyncSession, name: str) -> Team:
    """The team with this name, created if missing (commits)."""
    team = (await session.execute(select(Team).where(Team.name == name))).scalar_one_or_none()
    if team is None:
        team = Team(name=name)
        session.add(team)
        await session.commit()
    return team


async def agents(session: AsyncSession, roles: tuple[str, ...] = ("sales", "tmk")) -> list[User]:
    """Active users who work leads."""
    return list(
        (
            await session.execute(
                select(User).where(User.role.in_(roles), User.active.is_(True)).order_by(User.username)
            )
        ).scalars()
    )


async def usernames(session: AsyncSession, user_ids: list[int]) -> dict[int, str]:
    """Usernames by id."""
    if not user_ids:
        return {}
    rows = await session.execute(select(User.id, User.username).where(User.id.in_(user_ids)))
    return {r[0]: r[1] for r in rows}


async def agents_named(session: AsyncSession, names: list[str]) -> dict[str, int]:
    """The sales and TMK agents among these usernames: username → id."""
    if not names:
        return {}
    rows = await session.execute(
        select(User.username, User.id).where(User.username.in_(names), User.role.in_(("sales", "tmk")))
    )
    return {r[0]: r[1] for r in rows}
