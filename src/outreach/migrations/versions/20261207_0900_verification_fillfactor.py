"""email_verifications leaves room on each page (PostgreSQL fillfactor 50)

A bulk job inserts one pending row per address and then updates each once with its
result. With full pages the new row version lands on another page, and each of the
table's four indexes gets a new entry; with room on the page the update is HOT
(heap-only: none of the updated columns is indexed), which halves the cost of
storing a batch (bench/README.md, recipient_verify). Pages written from now on keep
the room; SQLite has no such setting.

Revision ID: 3f5b9e2c7a10
Revises: 0a0d17a0de1e
Create Date: 2026-12-07 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "3f5b9e2c7a10"
down_revision: str | tuple[str, ...] | None = "0a0d17a0de1e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE email_verifications SET (fillfactor = 50)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE email_verifications RESET (fillfactor)")
