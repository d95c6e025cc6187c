"""Errors a client can cause. Each names the request field at fault so the API can answer with a precise
4xx (never a 500) and the CLI can print the same message."""


class ServiceError(Exception):
    status_code = 400

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class InvalidInput(ServiceError):
    status_code = 422


class NotFound(ServiceError):
    status_code = 404


class TooLarge(ServiceError):
    status_code = 413


class Unauthenticated(ServiceError):
    """No key, or one that is unknown or revoked (401)."""

    status_code = 401


class Forbidden(ServiceError):
    """A valid key without the scope the request needs (403)."""

    status_code = 403


class TooManyRequests(ServiceError):
    """A key's quota or rate is spent; `retry_after` (seconds) says when to try again (429)."""

    status_code = 429

    def __init__(self, field: str, message: str, retry_after: int) -> None:
        super().__init__(field, message)
        self.retry_after = retry_after


class Conflict(ServiceError):
    status_code = 409


class DataUnavailable(ServiceError):
    """The request is well formed but this server has no real calibration data for the dataset."""

    status_code = 400
