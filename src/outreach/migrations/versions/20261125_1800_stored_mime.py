"""scheduled_emails.mime: the encoded message of send-only Gmail and SMTP emails

Revision ID: 5e4d0e1ma1me
Revises: c0ffee0campa
Create Date: 2026-11-25 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5e4d0e1ma1me"
down_revision: str | tuple[str, ...] | None = "c0ffee0campa"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("scheduled_emails") as batch:
        batch.add_column(sa.Column("mime", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("scheduled_emails") as batch:
        batch.drop_column("mime")
