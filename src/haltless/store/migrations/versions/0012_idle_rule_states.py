"""Delete the rule-state rows that remember nothing (issue 21).

Since each (machine, metric) series keeps the clock that says what is late, a threshold rule with nothing pending
keeps no state, and no row means idle. Shared mode used to upsert a row for every (rule, machine) of every batch,
only to advance its `last_ts`: those rows are read on every refresh of their machine, and most would never be
touched again. Rows of `no_data`, anomaly and forecast rules stay (their `seen_at` and `last_ts` matter).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    states = sa.table(
        "rule_states",
        sa.column("rule_id", sa.String),
        sa.column("breach_since", sa.BigInteger),
        sa.column("armed", sa.Boolean),
        sa.column("flap_fires"),
        sa.column("flapping", sa.Boolean),
        sa.column("calm_since", sa.BigInteger),
        sa.column("seen_at", sa.BigInteger),
    )
    rules = sa.table("alert_rules", sa.column("id", sa.String), sa.column("kind"), sa.column("condition"))
    plain_threshold = sa.select(rules.c.id).where(rules.c.kind == "threshold", rules.c.condition != "no_data")
    op.execute(
        sa.delete(states).where(
            states.c.rule_id.in_(plain_threshold),
            states.c.breach_since.is_(None),
            states.c.armed == sa.true(),
            # An empty flap memory is written as JSON null (the column's type), not SQL NULL.
            sa.or_(states.c.flap_fires.is_(None), sa.cast(states.c.flap_fires, sa.Text) == "null"),
            states.c.flapping == sa.false(),
            states.c.calm_since.is_(None),
            states.c.seen_at.is_(None),
        )
    )


def downgrade() -> None:
    pass  # a missing row is an idle state to every version: nothing to put back
