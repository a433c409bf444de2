"""Who is calling: session cookies for pages, signed bearer tokens for programs."""

from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from storage.models import User

_TOKEN_SALT = "lineup.api-token.v1"


@dataclass(frozen=True, slots=True)
class Principal:
    id: int
    username: str
    display_name: str
    role: str
    sip_extension: str | None

    @classmethod
    def of(cls, user: User) -> Principal:
        return cls(user.id, user.username, user.display_name, user.role, user.sip_extension)


class TokenError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TokenSigner:
    """Stateless bearer tokens: the user id, signed and time-stamped with the secret key."""

    def __init__(self, secret_key: str, ttl_s: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt=_TOKEN_SALT)
        self._ttl = ttl_s

    def issue(self, user_id: int) -> str:
        return self._serializer.dumps({"uid": user_id})

    def user_id(self, token: str) -> int:
        """The user id in a valid token; raises TokenError('expired' | 'invalid')."""
        try:
            data = self._serializer.loads(token, max_age=self._ttl)
        except SignatureExpired:
            raise TokenError("expired") from None
        except BadSignature:
            raise TokenError("invalid") from None
        if not isinstance(data, dict) or not isinstance(data.get("uid"), int):
            raise TokenError("invalid")
        return data["uid"]
