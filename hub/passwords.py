"""Password hashing with argon2."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# A real hash to verify against when the user does not exist, so timing does not reveal names.
_DUMMY = _hasher.hash("not-a-user")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


async def check_password(password_hash: str | None, password: str) -> bool:
    """``verify_password`` off the event loop: argon2 is deliberately slow (tens of ms)."""
    return await asyncio.to_thread(verify_password, password_hash, password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when the password matches; constant work whether or not the user exists."""
    try:
        return _hasher.verify(password_hash or _DUMMY, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False
