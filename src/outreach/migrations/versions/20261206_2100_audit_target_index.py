"""audit_logs.target_id indexed: account deletion finds a user's audit rows by index

Deletion looks audit rows up by actor (already indexed) and by target (the user or
one of their things); without this index the target lookup read the whole table.

Revision ID: 0a0d17a0de1e
Revises: 20261206fups
Create Date: 2026-12-06 21:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0a0d17a0de1e"
down_revision: str | tuple[str, ...] | None = "20261206fups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_logs") as batch:
        batch.create_index("ix_audit_logs_target_id", ["target_id"])


def downgrade() -> None:
    with op.batch_alter_table("audit_logs") as batch:
        batch.drop_index("ix_audit_logs_target_id")
