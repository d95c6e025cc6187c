"""Who may do what: `Authorization: Bearer <token>` resolved to a Principal, and one dependency per scope
a route needs. Without keys (`--auth off`, or a loopback-only server under `auto`) every client is an
anonymous admin; a key that is sent is still resolved, so what it writes carries its name. The start-up
log says which of these applies and why."""

import logging
import shlex
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from app.api.deps import RuntimeDep, SettingsDep
from app.api.rate_limit import enforce_write_rate
from app.db import Database
from app.runtime import display_url
from app.services.errors import Forbidden, Unauthenticated
from app.services.keys import ANONYMOUS, Principal, Scope, has_active_admin, principal_for_token
from app.settings import Settings, is_loopback

AUTH_FIELD = "authorization"
log = logging.getLogger("nasscore")


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
    """A dependency that refuses requests below `scope`; reads (`always` False) only when `--auth-reads`.
    Writes (scope write or admin) also count toward the key's or client's write rate."""

    def check(
        request: Request, settings: SettingsDep, principal: Annotated[Principal | None, Depends(current_principal)]
    ) -> Principal:
        if principal is None:
            if not always and not settings.auth_reads:
                return ANONYMOUS_READER
            raise Unauthenticated(AUTH_FIELD, f"this request needs an API key with scope '{scope.label}'")
        if principal.scope < scope:
            raise Forbidden(
                AUTH_FIELD,
                f"this request needs scope '{scope.label}'; key {principal.name!r} has '{principal.scope.label}'",
            )
        if scope >= Scope.WRITE:
            enforce_write_rate(request, settings, principal)
        return principal

    return check


ANONYMOUS_READER = Principal(name=None, scope=Scope.READ)

require_read = _require(Scope.READ, always=False)
require_write = _require(Scope.WRITE)
require_admin = _require(Scope.ADMIN)
ReadAccess = Annotated[Principal, Depends(require_read)]
WriteAccess = Annotated[Principal, Depends(require_write)]
AdminAccess = Annotated[Principal, Depends(require_admin)]


def auth_summary(settings: Settings) -> str:
    """Whether keys are required and why, e.g. "auth: off (loopback-only server; `--auth on` to require keys)"."""
    if settings.auth == "auto":
        why = (
            f"binds {settings.host}, not only loopback"
            if settings.auth_enabled
            else "loopback-only server; `--auth on` to require keys"
        )
    elif settings.auth_enabled or is_loopback(settings.host):
        why = f"--auth {settings.auth}"
    else:
        why = f"--auth off although it binds {settings.host}: every client that reaches it may write"
    if not settings.auth_enabled:
        return f"auth: off ({why})"
    reads = "reads need a 'read' key too (--auth-reads)" if settings.auth_reads else "reads are public"
    return f"auth: on ({why}); {reads}"


def log_auth(settings: Settings, database: Database) -> None:
    """Log `auth_summary`, and warn when keys are required but no client could ever administer the
    service: no unrevoked admin key and no configured admin hash. The warning names the exact command."""
    log.info(auth_summary(settings))
    if not settings.auth_enabled or settings.admin_key_sha256 is not None:
        return
    with database.read_session() as session:
        if has_active_admin(session):
            return
    place = (
        f"--database-url {shlex.quote(display_url(settings.database_url))}"
        if settings.database_url
        else f"--home {shlex.quote(str(settings.home))}"
    )
    log.warning(
        "auth: on, but there is no admin key; create one with `nasscore keys create --name admin --scope admin "
        "%s` (it prints the token once), or start with NASSCORE_ADMIN_KEY_SHA256 from `nasscore keys hash --new`",
        place,
    )
