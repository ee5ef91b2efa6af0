from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from outreach.template.sandbox import MAX_VALUE_CHARS

MAX_BODY = 50_000
MAX_SAMPLE_FIELDS = 100
SampleName = Annotated[str, Field(max_length=100)]
SampleValue = Annotated[str, Field(max_length=MAX_VALUE_CHARS)] | None


class TemplateCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    subject: str = Field(min_length=1, max_length=1000)
    body_text: str = Field(min_length=1, max_length=MAX_BODY)
    body_html: str | None = Field(default=None, max_length=MAX_BODY)


class TemplateUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    subject: str | None = Field(default=None, min_length=1, max_length=1000)
    body_text: str | None = Field(default=None, min_length=1, max_length=MAX_BODY)
    body_html: str | None = Field(default=None, max_length=MAX_BODY)


class TemplateOut(BaseModel):
    id: uuid.UUID
    name: str
    version: int
    subject: str
    body_text: str
    body_html: str | None
    variables: list[str] = Field(description="Every variable the template uses")
    required_variables: list[str] = Field(
        description="Variables used without a default(): a recipient without them is skipped"
    )
    source: str = Field(description="manual, built-in (the deterministic writer) or llm:<model>")
    created_at: datetime
    updated_at: datetime


class RenderRequest(BaseModel):
    sample: dict[SampleName, SampleValue] = Field(
        default_factory=dict,
        max_length=MAX_SAMPLE_FIELDS,
        description="Recipient fields (first_name, company, custom columns…); "
        f"missing ones use built-in sample data. Each value at most {MAX_VALUE_CHARS} "
        "characters, like a list cell",
    )
    sender: dict[SampleName, SampleValue] | None = Field(
        default=None,
        max_length=MAX_SAMPLE_FIELDS,
        description="sender.* values; default: your own profile",
    )


class RenderedOut(BaseModel):
    subject: str
    text: str
    html: str | None
    context: dict[str, object] = Field(description="The variables the render saw")


class VariableInfo(BaseModel):
    name: str
    source: str = Field(description="recipient, list column, or sender")
    example: str | None = None


class VariablesOut(BaseModel):
    variables: list[VariableInfo]
    filters: list[str]


class GeneratedOut(BaseModel):
    subject: str
    body_text: str
    writer: str = Field(description="built-in (deterministic, no AI) or llm:<model>")
    variables: list[str]
    required_variables: list[str]
    skills_used: list[str] = Field(description="Resume skills the draft leans on")
    resume_id: uuid.UUID | None
    charged_credits: int
    template: TemplateOut | None = Field(description="The saved template, when save_as was given")
