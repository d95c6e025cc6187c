"""Persistence: typed ORM models, engine/session factory, migrations and the repository layer."""

from app.db.engine import Database

__all__ = ["Database"]
