"""File storage behind one interface: a local folder or a Google Cloud Storage bucket.

This module chooses the backend from the settings and holds the process's
storage; the interface and the local backend are in ``kit/storage_base.py``.
"""

from __future__ import annotations

from outreach.config import Settings
from outreach.kit.storage_base import (
    CHUNK_SIZE,
    InvalidKey,
    LocalStorage,
    ObjectNotFound,
    Storage,
    StorageError,
)

__all__ = [
    "CHUNK_SIZE",
    "InvalidKey",
    "LocalStorage",
    "ObjectNotFound",
    "Storage",
    "StorageError",
    "create_storage",
    "get_storage",
    "set_storage",
]


def create_storage(settings: Settings) -> Storage:
    if settings.storage_backend == "gcs":
        from outreach.kit.gcs import GCSStorage

        if not settings.gcs_bucket:
            raise StorageError("OUTREACH_GCS_BUCKET is required with OUTREACH_STORAGE_BACKEND=gcs")
        return GCSStorage(settings.gcs_bucket)
    return LocalStorage(settings.storage_path)


_storage: Storage | None = None


def set_storage(storage: Storage | None) -> None:
    global _storage
    _storage = storage


def get_storage() -> Storage:
    """The process's storage (set by the app lifespan; a worker makes it on first use)."""
    global _storage
    if _storage is None:
        from outreach.config import get_settings

        _storage = create_storage(get_settings())
    return _storage
