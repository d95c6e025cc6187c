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


class Conflict(ServiceError):
    status_code = 409


class DataUnavailable(ServiceError):
    """The request is well formed but this server has no real calibration data for the dataset."""

    status_code = 400
