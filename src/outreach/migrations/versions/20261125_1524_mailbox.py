"""mailbox

Revision ID: e3e2effd89e1
Revises: 5bb693eaa59f
Create Date: 2026-11-25 15:24:30.846333
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import outreach.kit.db

revision: str = "e3e2effd89e1"
down_revision: str | None = "5bb693eaa59f"
branch_labels: str | Sequence[str] | None = ("mailbox",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mailboxes",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column(
            "provider",
            sa.Enum(
                "gmail", "smtp", "outbox", name="mailboxprovider", native_enum=False, length=20
            ),
            nullable=False,
        ),
        sa.Column(
            "mode",
            sa.Enum("full", "send_only", name="mailboxmode", native_enum=False, length=20),
            nullable=True,
        ),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "active", "revoked", "error", name="mailboxstatus", native_enum=False, length=20
            ),
            nullable=False,
        ),
        sa.Column("status_reason", sa.String(length=500), nullable=True),
        sa.Column("status_changed_at", outreach.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("google_sub", sa.String(length=255), nullable=True),
        sa.Column("refresh_token_encrypted", sa.Text(), nullable=True),
        sa.Column("access_token_encrypted", sa.Text(), nullable=True),
        sa.Column(
            "access_token_expires_at", outreach.kit.db.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("granted_scopes", sa.JSON(), nullable=False),
        sa.Column("daily_cap", sa.Integer(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.Text(), nullable=True),
        sa.Column("smtp_host", sa.String(length=255), nullable=True),
        sa.Column("smtp_port", sa.Integer(), nullable=True),
        sa.Column(
            "smtp_security",
            sa.Enum("starttls", "tls", "none", name="smtpsecurity", native_enum=False, length=20),
            nullable=True,
        ),
        sa.Column("smtp_username", sa.String(length=320), nullable=True),
        sa.Column("smtp_password_encrypted", sa.Text(), nullable=True),
        sa.Column("last_verified_at", outreach.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "sending_deferred_until", outreach.kit.db.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("updated_at", outreach.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", outreach.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "daily_cap BETWEEN 1 AND 2000", name=op.f("ck_mailboxes_daily_cap_range")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_mailboxes_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailboxes")),
        sa.UniqueConstraint(
            "user_id", "address", "provider", name=op.f("uq_mailboxes_user_id_address_provider")
        ),
    )
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mailboxes_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mailboxes_created_at"))

    op.drop_table("mailboxes")
