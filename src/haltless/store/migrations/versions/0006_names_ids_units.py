"""Machine names unique per tenant, reading ids unique per machine, one unit per (machine, metric).

- `machines`: two machines of one name in a tenant made `haltless watch --machine NAME` pick one at random.
  Existing duplicates keep the oldest machine's name; the others get a suffix (`Press 1 (2)`, `Press 1 (3)`),
  then `uq_machines_tenant_name` refuses new ones.
- `readings.reading_id` was unique per tenant, so two machines numbering their readings alike ("0001") lost
  the second one as a "duplicate". It is unique per machine now (`uq_readings_machine_reading_id`); every
  existing row satisfies the narrower constraint.
- `metric_units`: the unit of each (machine, metric), from the newest stored reading that states one.

SQLite rebuilds `machines` and `readings` for the constraints (`store.database.migrate` runs migrations with
foreign keys off, so the rebuilds cascade nowhere).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_MAX_NAME = 200


def _suffixed(name: str, n: int, taken: set[str]) -> str:
    while True:
        suffix = f" ({n})"
        candidate = name[: _MAX_NAME - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
        n += 1


def _rename_duplicate_machines() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, tenant_id, name FROM machines ORDER BY tenant_id, created_at, id")).all()
    taken: dict[str, set[str]] = {}
    for _, tenant_id, name in rows:
        taken.setdefault(tenant_id, set()).add(name)
    first: set[tuple[str, str]] = set()
    for machine_id, tenant_id, name in rows:
        if (tenant_id, name) not in first:
            first.add((tenant_id, name))
            continue
        new_name = _suffixed(name, 2, taken[tenant_id])
        taken[tenant_id].add(new_name)
        bind.execute(sa.text("UPDATE machines SET name = :name WHERE id = :id"), {"name": new_name, "id": machine_id})


def upgrade() -> None:
    _rename_duplicate_machines()
    with op.batch_alter_table("machines") as batch:
        batch.create_unique_constraint("uq_machines_tenant_name", ["tenant_id", "name"])
    with op.batch_alter_table("readings") as batch:
        batch.drop_constraint("uq_readings_tenant_reading_id", type_="unique")
        batch.create_unique_constraint("uq_readings_machine_reading_id", ["machine_id", "reading_id"])
    op.create_table(
        "metric_units",
        sa.Column("machine_id", sa.String(36), sa.ForeignKey("machines.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("metric_name", sa.String(64), primary_key=True),
        sa.Column("unit", sa.String(32), nullable=False),
    )
    op.execute(
        "INSERT INTO metric_units (machine_id, metric_name, unit)"
        " SELECT machine_id, metric_name, unit FROM readings WHERE id IN"
        " (SELECT MAX(id) FROM readings WHERE unit <> '' GROUP BY machine_id, metric_name)"
    )


def downgrade() -> None:
    op.drop_table("metric_units")
    # Fails, as it must, when two machines of a tenant have meanwhile stored the same reading id.
    with op.batch_alter_table("readings") as batch:
        batch.drop_constraint("uq_readings_machine_reading_id", type_="unique")
        batch.create_unique_constraint("uq_readings_tenant_reading_id", ["tenant_id", "reading_id"])
    with op.batch_alter_table("machines") as batch:
        batch.drop_constraint("uq_machines_tenant_name", type_="unique")
