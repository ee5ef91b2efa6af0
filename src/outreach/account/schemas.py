from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class DeletionPreview(BaseModel):
    """What deleting the account would remove, for the confirmation screen."""

    mailboxes: int
    campaigns: int
    unsent_emails: int = Field(description="Cancelled and refunded before the balance is forfeited")
    recipient_lists: int
    templates: int
    resumes: int
    credit_balance: int = Field(description="Credits now; lost on deletion")


class DeletionConfirmation(BaseModel):
    confirmation_token: str = Field(
        description="Send it back as DELETE /v1/me?confirm=TOKEN, from this same session"
    )
    expires_at: datetime
    preview: DeletionPreview


class AccountDeleted(BaseModel):
    deleted_at: datetime
    mailboxes_revoked: int = Field(description="Gmail grants revoked at Google")
    emails_cancelled: int
    credits_refunded: int = Field(description="Refunds of the cancelled emails")
    credits_forfeited: int = Field(description="The balance left, closed by the ledger")
    files_deleted: int = Field(description="Stored files (resumes, uploaded lists) removed")
