"""Persistence: typed ORM models, the engine and session factory, portable idempotent inserts and the
migrations. There is no repository layer: the queries live with the services that need them (app/services)."""

from app.db.engine import Database

__all__ = ["Database"]
