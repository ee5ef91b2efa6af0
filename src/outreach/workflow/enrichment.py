"""Bulk enrichment as a graph: start → one step per batch of companies → settle.

A step enriches up to ``OUTREACH_ENRICH_BATCH_COMPANIES`` companies, each
stored with the job's progress in its own transaction; the checkpoint after
the step records the new position. A run that crashed resumes after the last
company stored (even inside a step: the job row is ahead of the checkpoint
then, and the step takes the row's position). Credits are held once when the
job is created and the difference refunded once in ``settle`` under the
job's ledger key.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any, TypedDict

from langgraph.runtime import Runtime

from outreach.config import get_settings
from outreach.kit.db import Database
from outreach.recipient.enrichment import EnrichProgress, enrichment_service
from outreach.workflow.checkpoint import batched_run_graph, run_durably


class EnrichRunState(TypedDict, total=False):
    job_id: str
    total: int
    done: int  # companies enriched and stored
    complete: bool
    skipped: bool  # the job was gone or already finished when the run began


@dataclass
class EnrichRunContext:
    database: Database


def _state_of(progress: EnrichProgress | None) -> EnrichRunState:
    if progress is None:
        return {"complete": True}
    return {"total": progress.total, "done": progress.done, "complete": progress.complete}


async def start_run(state: EnrichRunState, runtime: Runtime[EnrichRunContext]) -> EnrichRunState:
    progress = await enrichment_service.begin_bulk_run(
        runtime.context.database, job_id=uuid.UUID(state["job_id"])
    )
    if progress is None:
        return {"skipped": True, "complete": True}
    return _state_of(progress)


async def enrich_batch(state: EnrichRunState, runtime: Runtime[EnrichRunContext]) -> EnrichRunState:
    progress = await enrichment_service.enrich_next_companies(
        runtime.context.database,
        job_id=uuid.UUID(state["job_id"]),
        done=state["done"],
        count=max(get_settings().enrich_batch_companies, 1),
    )
    return _state_of(progress)


async def settle(state: EnrichRunState, runtime: Runtime[EnrichRunContext]) -> EnrichRunState:
    await enrichment_service.settle_bulk_run(
        runtime.context.database, job_id=uuid.UUID(state["job_id"])
    )
    return {}


enrichment_graph = batched_run_graph(
    EnrichRunState, EnrichRunContext, start_run=start_run, batch=enrich_batch, settle=settle
)


async def run_enrichment_job(database: Database, *, job_id: uuid.UUID) -> dict[str, Any]:
    """The ``recipient.enrich_bulk`` job: run (or resume) the job's graph to its end."""
    progress = await enrichment_service.bulk_progress(database, job_id=job_id)
    remaining = 0 if progress is None else max(progress.total - progress.done, 0)
    steps = math.ceil(remaining / max(get_settings().enrich_batch_companies, 1))
    return await run_durably(
        enrichment_graph,
        thread_id=str(job_id),
        start={"job_id": str(job_id)},
        context=EnrichRunContext(database),
        max_steps=steps + 10,
    )
