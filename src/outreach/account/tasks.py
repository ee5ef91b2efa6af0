"""Account jobs: stored files of a deleted account, removed once the deletion commits."""

from __future__ import annotations

from outreach.kit.jobs import job
from outreach.kit.storage import get_storage


@job("account.delete_stored_files")
async def delete_stored_files(keys: list[str]) -> int:
    """Delete the files (deleting a missing one is not an error, so a retry is safe)."""
    storage = get_storage()
    for key in keys:
        await storage.delete(key)
    return len(keys)
