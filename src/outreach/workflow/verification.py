"""Bulk verification as a graph: start → one step per batch → settle.

Each ``verify_batch`` step checks one batch (``OUTREACH_VERIFY_BATCH_SIZE``
addresses) and stores its results and the job's new position in one
transaction; the checkpoint after the step, written while the next step runs,
records the same position. A run that crashed resumes at the next batch:
finished batches are neither checked nor written again. Should the crash fall
between a batch's commit and its checkpoint, the step finds the job row ahead
of its state and takes the row's position instead of checking the batch again.
Credits are charged once when the job is created and refunded once in
``settle`` under the job's ledger key, so a replayed step can never charge or
refund twice.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any, TypedDict

from langgraph.runtime import Runtime

from outreach.config import get_settings
from outreach.kit.db import Database
from outreach.recipient.verification import BulkProgress, BulkRun, verification_service
from outreach.workflow.checkpoint import batched_run_graph, run_durably


class VerifyRunState(TypedDict, total=False):
    job_id: str
    total: int
    done: int
    cursor: str | None  # the last address checked
    complete: bool  # every batch is stored (or the job is gone): settle next
    skipped: bool  # the job was gone or already finished when the run began


@dataclass
class VerifyRunContext:
    """What the steps share in one process; never checkpointed."""

    database: Database
    run: BulkRun  # DNS answers and lookups in flight, the addresses read ahead


def _state_of(progress: BulkProgress | None) -> VerifyRunState:
    if progress is None:
        return {"complete": True}
    return {
        "total": progress.total,
        "done": progress.done,
        "cursor": progress.cursor,
        "complete": progress.complete,
    }


async def start_run(state: VerifyRunState, runtime: Runtime[VerifyRunContext]) -> VerifyRunState:
    progress = await verification_service.begin_bulk_run(
        runtime.context.database, job_id=uuid.UUID(state["job_id"])
    )
    if progress is None:
        return {"skipped": True, "complete": True}
    return _state_of(progress)


async def verify_batch(state: VerifyRunState, runtime: Runtime[VerifyRunContext]) -> VerifyRunState:
    progress = await verification_service.verify_next_batch(
        runtime.context.database,
        job_id=uuid.UUID(state["job_id"]),
        done=state["done"],
        after=state.get("cursor"),
        run=runtime.context.run,
    )
    return _state_of(progress)


async def settle(state: VerifyRunState, runtime: Runtime[VerifyRunContext]) -> VerifyRunState:
    await verification_service.finish_bulk_run(
        runtime.context.database, job_id=uuid.UUID(state["job_id"])
    )
    return {}


verification_graph = batched_run_graph(
    VerifyRunState, VerifyRunContext, start_run=start_run, batch=verify_batch, settle=settle
)


async def run_verification_job(database: Database, *, job_id: uuid.UUID) -> dict[str, Any]:
    """The ``recipient.verify_bulk`` job: run (or resume) the job's graph to its end."""
    # One connection for the run's many short transactions (checked out once).
    async with database.pinned() as pinned:
        progress = await verification_service.bulk_progress(pinned, job_id=job_id)
        remaining = 0 if progress is None else max(progress.total - progress.done, 0)
        batches = math.ceil(remaining / max(get_settings().verify_batch_size, 1))
        context = VerifyRunContext(pinned, BulkRun(prober=verification_service.bulk_prober()))
        try:
            return await run_durably(
                verification_graph,
                thread_id=str(job_id),
                start={"job_id": str(job_id)},
                context=context,
                max_steps=batches + 10,  # start, settle, and a step adopting the job's position
                # A batch's checkpoint is written while the next batch runs: should the
                # process die first, the resumed step finds the job row ahead of its
                # state and adopts the row's position (no batch is checked or stored
                # twice).
                durability="async",
            )
        finally:
            context.run.close()
