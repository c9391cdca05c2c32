"""`tenants.rules_revision` (issue 21): a counter raised in the transaction of every change of a tenant's rules.

In shared mode each change of a tenant reloaded all its rules first (another process may have changed them): with
1,000 rules, a 1,000-row query before every ingest batch. A process now reads this one value and fetches the rules
only when it moved.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("rules_revision", sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("rules_revision")
