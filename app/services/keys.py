"""API keys: random tokens shown once and stored only as their SHA-256, each with one scope. Scopes are
ordered (read < write < admin): a key may do everything its scope and the scopes below it allow. A token
has 256 random bits, so a plain (fast) hash is safe to store; a slow password hash would only slow every
request down."""

import hashlib
import re
import secrets
from dataclasses import dataclass
from enum import IntEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import Database
from app.db.models import ApiKey, utcnow
from app.services.errors import Conflict, InvalidInput, NotFound

TOKEN_PREFIX = "nsk_"
KEY_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class Scope(IntEnum):
    READ = 1
    WRITE = 2
    ADMIN = 3

    @classmethod
    def parse(cls, name: str, field: str = "scope") -> "Scope":
        try:
            return cls[name.upper()]
        except KeyError:
            raise InvalidInput(field, f"unknown scope {name!r}; one of read, write, admin") from None

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Principal:
    """Who sent a request: a key's name and scope, or anonymous (`name` None) on a server without keys,
    where every client may do everything."""

    name: str | None
    scope: Scope

    @property
    def anonymous(self) -> bool:
        return self.name is None


ANONYMOUS = Principal(name=None, scope=Scope.ADMIN)
BOOTSTRAP_ADMIN = Principal(name="bootstrap-admin", scope=Scope.ADMIN)


@dataclass(frozen=True)
class NewKey:
    name: str
    scope: Scope
    token: str


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_key(database: Database, name: str, scope: Scope) -> NewKey:
    """A new key; its token is returned here and nowhere else."""
    if not KEY_NAME_PATTERN.match(name):
        raise InvalidInput("name", "1-64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit")
    token = new_token()

    def store(session: Session) -> None:
        if session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
            raise Conflict("name", f"a key named {name!r} exists (names are never reused, even when revoked)")
        prefix = token[: len(TOKEN_PREFIX) + 6]
        session.add(ApiKey(name=name, token_sha256=token_sha256(token), prefix=prefix, scope=scope.label))

    database.transact(store)
    return NewKey(name, scope, token)


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def has_active_admin(session: Session) -> bool:
    """Whether some unrevoked key may administer the service (else only a configured admin hash can)."""
    query = select(ApiKey.id).where(ApiKey.scope == Scope.ADMIN.label, ApiKey.revoked_at.is_(None)).limit(1)
    return session.scalar(query) is not None


def revoke_key(database: Database, name: str) -> ApiKey:
    def revoke(session: Session) -> ApiKey:
        key = session.scalar(select(ApiKey).where(ApiKey.name == name))
        if key is None:
            raise NotFound("name", f"no key named {name!r}")
        if key.revoked_at is None:
            key.revoked_at = utcnow()
        return key

    return database.transact(revoke)


def principal_for_token(session: Session, token: str, admin_sha256: str | None) -> Principal | None:
    """The key a token belongs to, or None when it is unknown or revoked."""
    digest = token_sha256(token)
    if admin_sha256 is not None and secrets.compare_digest(digest, admin_sha256):
        return BOOTSTRAP_ADMIN
    key = session.scalar(select(ApiKey).where(ApiKey.token_sha256 == digest, ApiKey.revoked_at.is_(None)))
    return None if key is None else Principal(key.name, Scope.parse(key.scope))
