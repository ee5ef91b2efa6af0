"""Runs one bulk verification job in its own process, configured by ``OUTREACH_*``
variables, so a test can kill it (SIGKILL) half-way:

    python -m tests.workflow.crash_runner <job id>
"""

from __future__ import annotations

import asyncio
import sys
import uuid

from outreach.config import Settings, use_settings
from outreach.kit.db import Database, set_database
from outreach.workflow.verification import run_verification_job


async def main(job_id: uuid.UUID) -> None:
    settings = Settings()
    use_settings(settings)
    database = Database.from_settings(settings)
    set_database(database)
    try:
        await run_verification_job(database, job_id=job_id)
    finally:
        await database.dispose()


if __name__ == "__main__":
    asyncio.run(main(uuid.UUID(sys.argv[1])))
