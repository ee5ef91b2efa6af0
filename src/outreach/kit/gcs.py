"""Google Cloud Storage backend on gcloud-aio-storage.

Credentials come from the usual places (``GOOGLE_APPLICATION_CREDENTIALS``, the
gcloud SDK file, the GCE metadata server). With ``STORAGE_EMULATOR_HOST`` set
(``http://127.0.0.1:9023``) the library talks to that emulator without credentials.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import cast

import aiohttp
from gcloud.aio.storage import Storage as GCSClient

from outreach.kit.storage_base import CHUNK_SIZE, ObjectNotFound, Storage, StorageError, _check_key

DEFAULT_CONTENT_TYPE = "application/octet-stream"


@contextmanager
def _storage_errors(what: str) -> Iterator[None]:
    """Turn HTTP and network failures into our errors; a 404 means the object is missing."""
    try:
        yield
    except aiohttp.ClientResponseError as exc:
        if exc.status == 404:
            raise ObjectNotFound(what) from exc
        raise StorageError(f"GCS error {exc.status} for {what!r}: {exc.message}") from exc
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise StorageError(f"GCS unreachable for {what!r}: {exc!r}") from exc


class GCSStorage(Storage):
    """Objects in one bucket, named by the (validated) key."""

    def __init__(self, bucket: str, *, timeout: int = 60) -> None:
        self.bucket = bucket
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._client: GCSClient | None = None

    def _gcs(self) -> GCSClient:
        # Built on first use: an aiohttp session must be created inside the running
        # loop, and create_storage() may run before there is one.
        if self._client is None:
            self._session = aiohttp.ClientSession()
            # gcloud-aio types its session as requests.Session when requests is installed.
            self._client = GCSClient(session=self._session)  # type: ignore[arg-type]
        return self._client

    def _stream_timeout(self) -> int:
        # aiohttp's "total" timeout also bounds reading the body, which would cut off
        # a slow consumer of a stream; bound connecting and each read instead.
        # The library annotates int but hands the value to aiohttp as is.
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.timeout, sock_read=self.timeout
        )
        return cast(int, timeout)

    async def put(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        _check_key(key)
        with _storage_errors(key):
            await self._gcs().upload(
                self.bucket,
                key,
                data,
                content_type=content_type or DEFAULT_CONTENT_TYPE,
                timeout=self.timeout,
            )

    async def get(self, key: str) -> bytes:
        _check_key(key)
        with _storage_errors(key):
            data: bytes = await self._gcs().download(self.bucket, key, timeout=self.timeout)
        return data

    async def open(self, key: str) -> AsyncIterator[bytes]:
        # A true stream: the library's download_stream keeps the HTTP response open
        # and we read it CHUNK_SIZE at a time, never holding the whole object.
        _check_key(key)
        with _storage_errors(key):
            stream = await self._gcs().download_stream(
                self.bucket, key, timeout=self._stream_timeout()
            )
            async with stream:  # releases the connection even if the consumer stops early
                while chunk := await stream.read(CHUNK_SIZE):
                    yield chunk

    async def delete(self, key: str) -> None:
        _check_key(key)
        try:
            with _storage_errors(key):
                await self._gcs().delete(self.bucket, key, timeout=self.timeout)
        except ObjectNotFound:
            return

    async def exists(self, key: str) -> bool:
        _check_key(key)
        try:
            with _storage_errors(key):
                await self._gcs().download_metadata(self.bucket, key, timeout=self.timeout)
        except ObjectNotFound:
            return False
        return True

    async def check(self) -> None:
        try:
            with _storage_errors(self.bucket):
                await self._gcs().get_bucket_metadata(self.bucket, timeout=self.timeout)
        except ObjectNotFound as exc:
            raise StorageError(f"GCS bucket {self.bucket!r} does not exist") from exc

    async def close(self) -> None:
        # The library does not close a session it was given; we own it.
        if self._client is not None:
            await self._client.close()
        if self._session is not None:
            await self._session.close()
        self._client = None
        self._session = None
