"""What the client raises and warns: one exception type for every failure (the server's refusal with its
status and field, an unreachable server, a wait that ran out), so a search loop needs one `except`."""

from collections.abc import Sequence

import httpx
from pydantic import ValidationError

from app.api.schemas import ErrorItem, ErrorResponse

BODY_SHOWN = 200  # characters of a non-JSON error body kept in the message (a proxy's HTML page, say)


class NasscoreError(Exception):
    """A request that did not succeed. `status` is the HTTP status (None when no answer came: the server was
    unreachable, or a wait ran out); `field` the request field the server named first (e.g. `arch`,
    `config.batch_size`, `authorization`; None when it named none), `message` its complaint and `errors`
    every field it named. `retry_after` is the server's Retry-After in seconds on a 429 or 503.
    `str(error)` is the server's `detail`: "field: message; ..."."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        field: str | None = None,
        errors: Sequence[ErrorItem] = (),
        detail: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.field = field
        self.message = message
        self.errors = list(errors)
        self.detail = detail or (f"{field}: {message}" if field else message)
        self.retry_after = retry_after
        super().__init__(self.detail)

    @classmethod
    def from_response(cls, response: httpx.Response, retry_after: float | None = None) -> "NasscoreError":
        """The server's error body (`{"detail", "errors": [{"field", "message"}]}`), or, for an answer that
        is not one (a proxy in front of the service, say), the status and the start of the body."""
        try:
            body = ErrorResponse.model_validate_json(response.content)
        except ValidationError:
            text = response.text[:BODY_SHOWN]
            return cls(f"server answered {response.status_code}: {text}", status=response.status_code)
        first = body.errors[0] if body.errors else ErrorItem(field="", message=body.detail)
        return cls(
            first.message,
            status=response.status_code,
            field=first.field or None,
            errors=body.errors,
            detail=body.detail,
            retry_after=retry_after,
        )


class PlainHttpKeyWarning(UserWarning):
    """An API key is about to travel unencrypted (plain `http://`) to a host other than this machine."""
