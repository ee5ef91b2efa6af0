"""resume

Revision ID: 0086c7e3aafc
Revises: 5bb693eaa59f
Create Date: 2026-11-25 15:27:08.349946
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import outreach.kit.db

revision: str = "0086c7e3aafc"
down_revision: str | None = "5bb693eaa59f"
branch_labels: str | Sequence[str] | None = ("resume",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "resumes",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("file_key", sa.String(length=300), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("page_count", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sections", sa.JSON(), nullable=False),
        sa.Column("contact", sa.JSON(), nullable=False),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("years_experience", sa.Double(), nullable=True),
        sa.Column("layout", sa.JSON(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", outreach.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_resumes_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resumes")),
        sa.UniqueConstraint("file_key", name=op.f("uq_resumes_file_key")),
    )
    with op.batch_alter_table("resumes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_resumes_created_at"), ["created_at"], unique=False)
        batch_op.create_index(
            "ix_resumes_user_id_created_at", ["user_id", "created_at"], unique=False
        )

    op.create_table(
        "resume_analyses",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("resume_id", sa.Uuid(), nullable=False),
        sa.Column("rubric_version", sa.String(length=20), nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("target_role", sa.String(length=200), nullable=True),
        sa.Column("job_description_sha256", sa.String(length=64), nullable=True),
        sa.Column("free", sa.Boolean(), nullable=False),
        sa.Column("credits_charged", sa.Integer(), nullable=False),
        sa.Column("writer", sa.String(length=120), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", outreach.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["resume_id"],
            ["resumes.id"],
            name=op.f("fk_resume_analyses_resume_id_resumes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_resume_analyses_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resume_analyses")),
    )
    with op.batch_alter_table("resume_analyses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_resume_analyses_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            "ix_resume_analyses_resume_id_created_at", ["resume_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_resume_analyses_user_id_created_at", ["user_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("resume_analyses", schema=None) as batch_op:
        batch_op.drop_index("ix_resume_analyses_user_id_created_at")
        batch_op.drop_index("ix_resume_analyses_resume_id_created_at")
        batch_op.drop_index(batch_op.f("ix_resume_analyses_created_at"))
    op.drop_table("resume_analyses")
    with op.batch_alter_table("resumes", schema=None) as batch_op:
        batch_op.drop_index("ix_resumes_user_id_created_at")
        batch_op.drop_index(batch_op.f("ix_resumes_created_at"))
    op.drop_table("resumes")
