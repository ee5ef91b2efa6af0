"""The storage interface, its errors and the local-folder backend.

Backends import this module; ``kit/storage.py`` picks one from the settings, so
no backend imports the module that chooses it."""

from __future__ import annotations

import asyncio
import os
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from pathlib import Path

CHUNK_SIZE = 256 * 1024


class StorageError(Exception):
    pass


class ObjectNotFound(StorageError):
    pass


class InvalidKey(StorageError):
    pass


def _check_key(key: str) -> str:
    """Keys are relative, slash-separated names with no empty, '.' or '..' parts."""
    parts = key.split("/")
    if (
        not key
        or len(key) > 512
        or key.startswith("/")
        or any(part in ("", ".", "..") for part in parts)
        or "\\" in key
        or "\x00" in key
    ):
        raise InvalidKey(f"invalid storage key: {key!r}")
    return key


class Storage(ABC):
    @abstractmethod
    async def put(self, key: str, data: bytes, *, content_type: str | None = None) -> None: ...

    @abstractmethod
    async def get(self, key: str) -> bytes: ...

    @abstractmethod
    def open(self, key: str) -> AsyncIterator[bytes]:
        """Stream an object in chunks."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Delete an object; deleting a missing one is not an error."""

    @abstractmethod
    async def exists(self, key: str) -> bool: ...

    @abstractmethod
    async def check(self) -> None:
        """Raise if the backend cannot be used (readiness)."""

    async def close(self) -> None:
        return None


class LocalStorage(Storage):
    """Files under one folder; a key can never name a path outside it."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / _check_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise InvalidKey(f"invalid storage key: {key!r}")
        return path

    async def put(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        path = self._path(key)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            temporary.write_bytes(data)
            temporary.replace(path)  # atomic: a reader never sees half a file

        await asyncio.to_thread(write)

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as exc:
            raise ObjectNotFound(key) from exc

    async def open(self, key: str) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError as exc:
            raise ObjectNotFound(key) from exc
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK_SIZE):
                yield chunk
        finally:
            handle.close()

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def check(self) -> None:
        def probe() -> None:
            self.root.mkdir(parents=True, exist_ok=True)
            if not os.access(self.root, os.W_OK):
                raise StorageError(f"{self.root} is not writable")

        await asyncio.to_thread(probe)
