"""User lifecycle: emails unique per tenant, disabled users, token generations, absolute session lifetime.

- `users.email` was unique across all tenants, so creating a user answered 409 for an email of another
  tenant (an oracle across tenants). It is now unique per tenant (`uq_users_tenant_email`), with a plain
  index for login, which looks the email up in every tenant.
- `users.disabled_at`: set while the user is disabled.
- `users.token_generation`: access tokens carry it; raising it refuses every token issued before.
- `refresh_tokens.session_expires_at`: when the session ends whatever its refreshes. Existing sessions end
  when their current refresh token expires (at most HALTLESS_REFRESH_TOKEN_TTL from now).

Dropping the old unique constraint means rebuilding `users` on SQLite; `store.database.migrate` runs
migrations with SQLite's foreign keys off, so the rebuild does not cascade into `refresh_tokens`.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# SQLite's unique constraint from 0001 has no name; batch mode names it by this convention to drop it.
_NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _email_unique_name() -> str:
    for unique in sa.inspect(op.get_bind()).get_unique_constraints("users"):
        if unique["column_names"] == ["email"] and unique["name"]:
            return unique["name"]  # PostgreSQL: users_email_key
    return "uq_users_email"


def upgrade() -> None:
    email_unique = _email_unique_name()
    with op.batch_alter_table("users", naming_convention=_NAMING) as batch:
        batch.drop_constraint(email_unique, type_="unique")
        batch.create_unique_constraint("uq_users_tenant_email", ["tenant_id", "email"])
        batch.create_index("ix_users_email", ["email"])
        batch.add_column(sa.Column("disabled_at", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("token_generation", sa.Integer, nullable=False, server_default="0"))
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.add_column(sa.Column("session_expires_at", sa.BigInteger, nullable=True))
    op.execute("UPDATE refresh_tokens SET session_expires_at = expires_at")
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.alter_column("session_expires_at", existing_type=sa.BigInteger, nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.drop_column("session_expires_at")
    # Fails, as it must, when an email has meanwhile been given to users of two tenants.
    with op.batch_alter_table("users") as batch:
        batch.drop_column("token_generation")
        batch.drop_column("disabled_at")
        batch.drop_index("ix_users_email")
        batch.drop_constraint("uq_users_tenant_email", type_="unique")
        batch.create_unique_constraint("users_email_key", ["email"])
