"""payment

Revision ID: 37678156d260
Revises: 5bb693eaa59f
Create Date: 2026-11-25 15:23:28.778825
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import outreach.kit.db

revision: str = "37678156d260"
down_revision: str | None = "5bb693eaa59f"
branch_labels: str | Sequence[str] | None = ("payment",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payment_orders",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("pack_id", sa.String(length=50), nullable=False),
        sa.Column("credits", sa.Integer(), nullable=False),
        sa.Column("amount_paise", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "created",
                "attempted",
                "paid",
                "failed",
                "expired",
                "refunded",
                name="paymentorderstatus",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("razorpay_order_id", sa.String(length=64), nullable=False),
        sa.Column("razorpay_payment_id", sa.String(length=64), nullable=True),
        sa.Column("bonus_credits", sa.Integer(), nullable=False),
        sa.Column("paid_at", outreach.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("paid_via", sa.String(length=20), nullable=True),
        sa.Column("failure_reason", sa.String(length=500), nullable=True),
        sa.Column("refunded_paise", sa.Integer(), nullable=False),
        sa.Column("refund_ids", sa.JSON(), nullable=False),
        sa.Column("clawed_back_credits", sa.Integer(), nullable=False),
        sa.Column("debt_credits", sa.Integer(), nullable=False),
        sa.Column("checked_at", outreach.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", outreach.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", outreach.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_payment_orders_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_orders")),
        sa.UniqueConstraint("razorpay_order_id", name=op.f("uq_payment_orders_razorpay_order_id")),
        sa.UniqueConstraint(
            "razorpay_payment_id", name=op.f("uq_payment_orders_razorpay_payment_id")
        ),
    )
    with op.batch_alter_table("payment_orders", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_payment_orders_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            "ix_payment_orders_status_created_at", ["status", "created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_payment_orders_user_id"), ["user_id"], unique=False)

    op.create_table(
        "webhook_events",
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("raw_body", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "received",
                "processed",
                "ignored",
                "mismatch",
                name="webhookeventstatus",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("detail", sa.String(length=500), nullable=True),
        sa.Column("payment_order_id", sa.Uuid(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("processed_at", outreach.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", outreach.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["payment_order_id"],
            ["payment_orders.id"],
            name=op.f("fk_webhook_events_payment_order_id_payment_orders"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
        sa.UniqueConstraint(
            "provider", "event_id", name=op.f("uq_webhook_events_provider_event_id")
        ),
    )
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_events_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_webhook_events_event_type"), ["event_type"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_webhook_events_payment_order_id"), ["payment_order_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_webhook_events_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_events_status"))
        batch_op.drop_index(batch_op.f("ix_webhook_events_payment_order_id"))
        batch_op.drop_index(batch_op.f("ix_webhook_events_event_type"))
        batch_op.drop_index(batch_op.f("ix_webhook_events_created_at"))

    op.drop_table("webhook_events")
    with op.batch_alter_table("payment_orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payment_orders_user_id"))
        batch_op.drop_index("ix_payment_orders_status_created_at")
        batch_op.drop_index(batch_op.f("ix_payment_orders_created_at"))

    op.drop_table("payment_orders")
