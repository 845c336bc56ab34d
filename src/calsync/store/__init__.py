"""Persistence: SQLAlchemy tables, engine/session handling, migrations."""
