"""Persistence: SQLAlchemy tables, Alembic migrations, and one repository module per concept."""
