"""Who may do what: `Authorization: Bearer <token>` resolved to a Principal, and one dependency per scope
a route needs. Without keys (`--auth off`, or a loopback-only server under `auto`) every client is an
anonymous admin; a key that is sent is still resolved, so what it writes carries its name."""

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from app.api.deps import RuntimeDep, SettingsDep
from app.services.errors import Forbidden, Unauthenticated
from app.services.keys import ANONYMOUS, Principal, Scope, principal_for_token

AUTH_FIELD = "authorization"


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    kind, _, token = header.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        raise Unauthenticated(AUTH_FIELD, "expected 'Authorization: Bearer <token>'")
    return token.strip()


def current_principal(request: Request, runtime: RuntimeDep, settings: SettingsDep) -> Principal | None:
    """The key's principal; ANONYMOUS without keys; None (not yet refused) when keys are on and none was sent."""
    token = _bearer_token(request)
    if token is None:
        return None if settings.auth_enabled else ANONYMOUS
    with runtime.database.read_session() as session:
        principal = principal_for_token(session, token, settings.admin_key_sha256)
    if principal is None:
        raise Unauthenticated(AUTH_FIELD, "unknown or revoked API key")
    return principal


def _require(scope: Scope, always: bool = True) -> Callable[..., Principal]:
    """A dependency that refuses requests below `scope`; reads (`always` False) only when `--auth-reads`."""

    def check(settings: SettingsDep, principal: Annotated[Principal | None, Depends(current_principal)]) -> Principal:
        if principal is None:
            if not always and not settings.auth_reads:
                return ANONYMOUS_READER
            raise Unauthenticated(AUTH_FIELD, f"this request needs an API key with scope '{scope.label}'")
        if principal.scope < scope:
            raise Forbidden(
                AUTH_FIELD,
                f"this request needs scope '{scope.label}'; key {principal.name!r} has '{principal.scope.label}'",
            )
        return principal

    return check


ANONYMOUS_READER = Principal(name=None, scope=Scope.READ)

require_read = _require(Scope.READ, always=False)
require_write = _require(Scope.WRITE)
require_admin = _require(Scope.ADMIN)
ReadAccess = Annotated[Principal, Depends(require_read)]
WriteAccess = Annotated[Principal, Depends(require_write)]
AdminAccess = Annotated[Principal, Depends(require_admin)]
