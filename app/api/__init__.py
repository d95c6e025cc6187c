"""The HTTP API (`/v1`, OpenAPI at `/docs`)."""

from app.api.app import create_app

__all__ = ["create_app"]
