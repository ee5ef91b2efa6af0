from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    model_validator,
)

from outreach.models import SuppressionReason
from outreach.recipient.cells import without_controls


def _without_controls(value: object) -> object:
    # Before the type check and the strip: a trailing NEL is refused, not trimmed.
    return without_controls(value) if isinstance(value, str) else value


# Recipient values added by hand follow the import's rule (recipient.cells).
Clean = BeforeValidator(_without_controls)
Text200 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
RecipientText200 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), Clean]


class ListCounts(BaseModel):
    imported: int
    duplicates: int
    invalid: int
    suppressed: int


class ListProgress(BaseModel):
    rows_done: int
    rows_total: int | None = Field(description="Known once the file has been counted")
    percent: float


class RecipientListOut(BaseModel):
    id: uuid.UUID
    name: str
    kind: str
    status: Literal["queued", "processing", "ready", "failed"]
    file_name: str | None
    file_format: str | None
    sheet_name: str | None
    headers: list[str]
    column_mapping: dict[str, Any] = Field(description="{field: column} used for the import")
    progress: ListProgress
    counts: ListCounts
    recipient_count: int | None = None
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class RecipientListCreate(BaseModel):
    name: Text200 = Field(min_length=1)


class RecipientOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    list_id: uuid.UUID
    position: int
    email: str
    name: str | None
    first_name: str | None
    last_name: str | None
    company: str | None
    title: str | None
    linkedin: str | None
    website: str | None
    timezone: str | None
    custom_fields: dict[str, Any]
    source: str
    verification_status: str
    verification_reasons: list[str]
    verified_at: datetime | None
    created_at: datetime


class RecipientCreate(BaseModel):
    email: Annotated[str, StringConstraints(strip_whitespace=True, max_length=320)]
    name: RecipientText200 | None = None
    first_name: Annotated[str, StringConstraints(max_length=100), Clean] | None = None
    last_name: Annotated[str, StringConstraints(max_length=100), Clean] | None = None
    company: RecipientText200 | None = None
    title: RecipientText200 | None = None
    linkedin: Annotated[str, StringConstraints(max_length=500), Clean] | None = None
    website: Annotated[str, StringConstraints(max_length=500), Clean] | None = None
    timezone: Annotated[str, StringConstraints(max_length=64), Clean] | None = None
    custom_fields: dict[str, Annotated[str, StringConstraints(max_length=2000), Clean]] = Field(
        default_factory=dict, max_length=50
    )


class RecipientsAdd(BaseModel):
    items: list[RecipientCreate] = Field(min_length=1, max_length=1000)


class RecipientsAdded(BaseModel):
    added: int
    duplicates: int
    suppressed: int


class ImportErrorOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    row: int
    column: str | None
    reason: str
    value: str | None


class SuppressionCreate(BaseModel):
    value: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=320)
    ] = Field(description="An email address, or a domain (example.com) to suppress all of it")
    reason: SuppressionReason = SuppressionReason.manual
    source: Annotated[str, StringConstraints(max_length=100)] | None = None


class SuppressionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    scope: str
    kind: str
    value: str
    reason: str
    source: str | None
    created_at: datetime


class VerifyEmailRequest(BaseModel):
    email: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=320)]


class VerificationOut(BaseModel):
    email: str
    status: Literal["deliverable", "risky", "undeliverable", "unknown"]
    reasons: list[str]
    details: dict[str, Any]
    verified_at: datetime | None
    cached: bool = Field(False, description="A recent result reused at no charge")
    credits_charged: int = 0


class VerifyBulkRequest(BaseModel):
    list_id: uuid.UUID | None = None
    emails: list[Annotated[str, StringConstraints(max_length=320)]] | None = Field(
        None, min_length=1
    )

    @model_validator(mode="after")
    def _one_source(self) -> VerifyBulkRequest:
        if (self.list_id is None) == (self.emails is None):
            raise ValueError("send either list_id or emails")
        return self


class VerificationJobOut(BaseModel):
    id: uuid.UUID
    kind: str
    status: Literal["queued", "running", "completed", "failed"]
    list_id: uuid.UUID | None
    total: int
    done: int
    credits_charged: int
    credits_refunded: int
    counts: dict[str, Any]
    results: list[dict[str, Any]] | None = None
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class VerificationResultOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    status: str
    reasons: list[str]
    details: dict[str, Any]
    verified_at: datetime | None


class CompanyIn(BaseModel):
    name: Text200 = Field(min_length=1)
    domain: Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)] | None = None
    website: Annotated[str, StringConstraints(max_length=500)] | None = None
    person_name: Text200 | None = Field(None, description="A contact's name, for first.last@…")


class EnrichBulkRequest(BaseModel):
    companies: list[CompanyIn] | None = Field(None, min_length=1)
    list_id: uuid.UUID | None = Field(None, description="Enrich the companies on this list")
    add_to_list_id: uuid.UUID | None = Field(None, description="Add addresses found to this list")

    @model_validator(mode="after")
    def _one_source(self) -> EnrichBulkRequest:
        if (self.list_id is None) == (self.companies is None):
            raise ValueError("send either companies or list_id")
        return self


class DirectoryEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    domain: str
    company: str | None
    contact_name: str | None
    title: str | None
    industry: str | None
    location: str | None
    source: str | None
    verification_status: str
    verified_at: datetime | None
    created_at: datetime


class DirectoryAddToList(BaseModel):
    list_id: uuid.UUID
    ids: list[uuid.UUID] = Field(min_length=1, max_length=1000)


class DirectoryRefresh(BaseModel):
    older_than_days: StrictInt = Field(30, ge=0, le=3650)
