"""Follow-ups and what comes back: campaign_steps, scheduled_emails.step and threading
headers, email_events (replied, auto_reply, bounced, unsubscribed), mailbox history ids

Revision ID: 20261206fups
Revises: 20261206retry
Create Date: 2026-12-06 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import outreach.kit.db

revision: str = "20261206fups"
down_revision: str | tuple[str, ...] | None = "20261206retry"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "campaign_steps",
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("template_id", sa.Uuid(), nullable=False),
        sa.Column("template_version", sa.Integer(), nullable=True),
        sa.Column("delay_business_days", sa.Integer(), nullable=False),
        sa.Column("use_own_subject", sa.Boolean(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", outreach.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "delay_business_days BETWEEN 1 AND 14", name=op.f("ck_campaign_steps_delay_range")
        ),
        sa.CheckConstraint(
            "position BETWEEN 1 AND 3", name=op.f("ck_campaign_steps_position_range")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_steps_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["templates.id"],
            name=op.f("fk_campaign_steps_template_id_templates"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_steps")),
        sa.UniqueConstraint(
            "campaign_id", "position", name=op.f("uq_campaign_steps_campaign_id_position")
        ),
    )
    with op.batch_alter_table("campaign_steps", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_campaign_steps_campaign_id"), ["campaign_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_campaign_steps_created_at"), ["created_at"], unique=False
        )

    op.create_table(
        "email_events",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("scheduled_email_id", sa.Uuid(), nullable=False),
        sa.Column("recipient_address", sa.String(length=320), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "replied",
                "auto_reply",
                "bounced",
                "unsubscribed",
                name="emaileventkind",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column(
            "source",
            sa.Enum(
                "gmail",
                "smtp",
                "manual",
                "unsubscribe",
                name="emaileventsource",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("occurred_at", outreach.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", outreach.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_email_events_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["scheduled_email_id"],
            ["scheduled_emails.id"],
            name=op.f("fk_email_events_scheduled_email_id_scheduled_emails"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_email_events_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_events")),
        sa.UniqueConstraint(
            "scheduled_email_id",
            "kind",
            "dedupe_key",
            name=op.f("uq_email_events_scheduled_email_id_kind_dedupe_key"),
        ),
    )
    with op.batch_alter_table("email_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_email_events_campaign_id"), ["campaign_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_email_events_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_email_events_scheduled_email_id"), ["scheduled_email_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_email_events_user_id"), ["user_id"], unique=False)

    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "followups_without_reply_detection",
                sa.Boolean(),
                server_default=sa.false(),
                nullable=False,
            )
        )
        batch_op.add_column(
            sa.Column("stop_on_auto_reply", sa.Boolean(), server_default=sa.false(), nullable=False)
        )

    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("history_id", sa.String(length=30), nullable=True))
        batch_op.add_column(
            sa.Column("inbox_checked_at", outreach.kit.db.UTCDateTime(timezone=True), nullable=True)
        )

    with op.batch_alter_table("scheduled_emails", schema=None) as batch_op:
        batch_op.add_column(sa.Column("step", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("previous_email_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("in_reply_to", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("reference_ids", sa.Text(), nullable=True))
        batch_op.create_index(
            "ix_scheduled_emails_mailbox_thread", ["mailbox_id", "thread_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_scheduled_emails_previous_email_id"), ["previous_email_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_scheduled_emails_previous_email_id_scheduled_emails"),
            "scheduled_emails",
            ["previous_email_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("scheduled_emails", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_scheduled_emails_previous_email_id_scheduled_emails"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_scheduled_emails_previous_email_id"))
        batch_op.drop_index("ix_scheduled_emails_mailbox_thread")
        batch_op.drop_column("reference_ids")
        batch_op.drop_column("in_reply_to")
        batch_op.drop_column("previous_email_id")
        batch_op.drop_column("step")

    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.drop_column("inbox_checked_at")
        batch_op.drop_column("history_id")

    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("stop_on_auto_reply")
        batch_op.drop_column("followups_without_reply_detection")

    with op.batch_alter_table("email_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_events_user_id"))
        batch_op.drop_index(batch_op.f("ix_email_events_scheduled_email_id"))
        batch_op.drop_index(batch_op.f("ix_email_events_created_at"))
        batch_op.drop_index(batch_op.f("ix_email_events_campaign_id"))

    op.drop_table("email_events")
    with op.batch_alter_table("campaign_steps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaign_steps_created_at"))
        batch_op.drop_index(batch_op.f("ix_campaign_steps_campaign_id"))

    op.drop_table("campaign_steps")
