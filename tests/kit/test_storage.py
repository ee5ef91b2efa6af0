"""One contract for every storage backend: a local folder, and GCS against gcp-storage-emulator.

The emulator runs in a thread on a free port for the whole session (one per xdist
worker); STORAGE_EMULATOR_HOST points gcloud-aio-storage at it, and it is wiped
after each test.
"""

from __future__ import annotations

import random
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from gcp_storage_emulator.server import create_server

from outreach.config import Settings
from outreach.kit.gcs import GCSStorage
from outreach.kit.storage import (
    CHUNK_SIZE,
    InvalidKey,
    LocalStorage,
    ObjectNotFound,
    Storage,
    StorageError,
    create_storage,
)

BUCKET = "outreach-test"
ONE_MB = bytes(range(256)) * 4096  # every byte value, NUL included
HOSTILE_KEYS = [
    "../x",
    "/etc/passwd",
    "a/../../b",
    "a//b",
    "",
    "a\\b",
    "a\x00b",
    ".",
    "..",
    "a/",
    "./a",
    "a/./b",
    "x" * 513,
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[Any]:
    port = _free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=BUCKET)
    server.start()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
        yield server
    server.stop()


@pytest.fixture(params=["local", "gcs"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "local":
        yield LocalStorage(tmp_path / "root")
        return
    emulator = request.getfixturevalue("gcs_emulator")
    backend = GCSStorage(BUCKET)
    yield backend
    await backend.close()
    emulator.wipe(keep_buckets=True)


def _random_bytes(size: int) -> bytes:
    return random.Random(size).randbytes(size)


async def _read_stream(storage: Storage, key: str) -> list[bytes]:
    return [chunk async for chunk in storage.open(key)]


class TestPutAndGet:
    async def test_binary_roundtrip(self, storage: Storage) -> None:
        await storage.put("blobs/one-mb.bin", ONE_MB)

        assert await storage.get("blobs/one-mb.bin") == ONE_MB

    async def test_empty_object(self, storage: Storage) -> None:
        if isinstance(storage, GCSStorage):
            pytest.skip("gcp-storage-emulator reads an empty upload body as None and fails")
        await storage.put("empty", b"")

        assert await storage.get("empty") == b""
        assert await storage.exists("empty")

    async def test_object_over_resumable_upload_threshold(self, storage: Storage) -> None:
        data = _random_bytes(6 * 1024 * 1024)  # GCS switches to a resumable upload above 5 MB

        await storage.put("big.bin", data, content_type="application/pdf")

        assert await storage.get("big.bin") == data

    async def test_overwrite_replaces_content(self, storage: Storage) -> None:
        await storage.put("resume.pdf", b"first version, rather long")
        await storage.put("resume.pdf", b"second")

        assert await storage.get("resume.pdf") == b"second"

    async def test_missing_object_raises(self, storage: Storage) -> None:
        with pytest.raises(ObjectNotFound):
            await storage.get("never-written")

    async def test_nested_keys_are_separate_objects(self, storage: Storage) -> None:
        await storage.put("users/1/resumes/a.pdf", b"a")
        await storage.put("users/1/resumes/b.pdf", b"b")
        await storage.put("users/2/resumes/a.pdf", b"other user")

        assert await storage.get("users/1/resumes/a.pdf") == b"a"
        assert await storage.get("users/1/resumes/b.pdf") == b"b"
        assert await storage.get("users/2/resumes/a.pdf") == b"other user"
        assert not await storage.exists("users/1/resumes")

    async def test_keys_with_spaces_and_unicode(self, storage: Storage) -> None:
        key = "resumes/José Núñez (final) #1 ?&=%20.pdf"

        await storage.put(key, b"pdf")

        assert await storage.get(key) == b"pdf"
        assert await storage.exists(key)
        assert not await storage.exists("resumes/José Núñez (final) #1 ?&= .pdf")


class TestOpen:
    async def test_streams_big_object_in_several_chunks(self, storage: Storage) -> None:
        data = _random_bytes(4 * CHUNK_SIZE + 123)
        await storage.put("stream.bin", data)

        chunks = await _read_stream(storage, "stream.bin")

        assert len(chunks) > 1
        assert all(0 < len(chunk) <= CHUNK_SIZE for chunk in chunks)
        assert b"".join(chunks) == data

    async def test_small_object(self, storage: Storage) -> None:
        await storage.put("small", b"\x00tiny\x00")

        assert b"".join(await _read_stream(storage, "small")) == b"\x00tiny\x00"

    async def test_stopping_early_then_reading_again(self, storage: Storage) -> None:
        data = _random_bytes(4 * CHUNK_SIZE)
        await storage.put("stream.bin", data)

        stream = storage.open("stream.bin")
        first = await anext(stream)
        await stream.aclose()  # type: ignore[attr-defined]

        assert data.startswith(first)
        assert await storage.get("stream.bin") == data

    async def test_missing_object_raises(self, storage: Storage) -> None:
        with pytest.raises(ObjectNotFound):
            await _read_stream(storage, "never-written")


class TestExists:
    async def test_true_after_put(self, storage: Storage) -> None:
        await storage.put("here", b"1")

        assert await storage.exists("here") is True

    async def test_false_when_missing(self, storage: Storage) -> None:
        assert await storage.exists("not-here") is False


class TestDelete:
    async def test_deleted_object_is_gone(self, storage: Storage) -> None:
        await storage.put("doomed/file", b"bye")

        await storage.delete("doomed/file")

        assert not await storage.exists("doomed/file")
        with pytest.raises(ObjectNotFound):
            await storage.get("doomed/file")

    async def test_missing_object_is_not_an_error(self, storage: Storage) -> None:
        await storage.delete("never-written")
        await storage.delete("never/written/either")

    async def test_only_the_named_object(self, storage: Storage) -> None:
        await storage.put("keep", b"1")
        await storage.put("drop", b"2")

        await storage.delete("drop")

        assert await storage.get("keep") == b"1"


class TestHostileKeys:
    @pytest.mark.parametrize("key", HOSTILE_KEYS)
    async def test_every_operation_refuses(self, storage: Storage, key: str) -> None:
        with pytest.raises(InvalidKey):
            await storage.put(key, b"evil")
        with pytest.raises(InvalidKey):
            await storage.get(key)
        with pytest.raises(InvalidKey):
            await _read_stream(storage, key)
        with pytest.raises(InvalidKey):
            await storage.delete(key)
        with pytest.raises(InvalidKey):
            await storage.exists(key)


class TestCheck:
    async def test_succeeds(self, storage: Storage) -> None:
        await storage.check()


def _files_under(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if not path.is_dir()}


class TestLocalStorageConfinement:
    async def test_hostile_keys_write_nothing_anywhere(self, tmp_path: Path) -> None:
        root = tmp_path / "sandbox" / "root"
        storage = LocalStorage(root)
        await storage.put("legit", b"ok")

        for key in HOSTILE_KEYS:
            with pytest.raises(InvalidKey):
                await storage.put(key, b"evil")

        assert _files_under(tmp_path) == {root / "legit"}

    async def test_symlinked_file_pointing_outside_is_refused(self, tmp_path: Path) -> None:
        root = tmp_path / "root"
        root.mkdir()
        secret = tmp_path / "secret.txt"
        secret.write_bytes(b"outside")
        (root / "link").symlink_to(secret)
        storage = LocalStorage(root)

        with pytest.raises(InvalidKey):
            await storage.get("link")
        with pytest.raises(InvalidKey):
            await _read_stream(storage, "link")
        with pytest.raises(InvalidKey):
            await storage.exists("link")
        with pytest.raises(InvalidKey):
            await storage.put("link", b"overwritten")
        with pytest.raises(InvalidKey):
            await storage.delete("link")
        assert secret.read_bytes() == b"outside"

    async def test_symlinked_folder_pointing_outside_is_refused(self, tmp_path: Path) -> None:
        root = tmp_path / "root"
        root.mkdir()
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "existing").write_bytes(b"outside")
        (root / "folder").symlink_to(outside, target_is_directory=True)
        storage = LocalStorage(root)

        with pytest.raises(InvalidKey):
            await storage.put("folder/new", b"evil")
        with pytest.raises(InvalidKey):
            await storage.get("folder/existing")
        with pytest.raises(InvalidKey):
            await storage.delete("folder/existing")
        assert _files_under(outside) == {outside / "existing"}

    async def test_dangling_symlink_pointing_outside_is_refused(self, tmp_path: Path) -> None:
        root = tmp_path / "root"
        root.mkdir()
        target = tmp_path / "created-by-attacker"
        (root / "link").symlink_to(target)
        storage = LocalStorage(root)

        with pytest.raises(InvalidKey):
            await storage.put("link", b"evil")
        assert not target.exists()

    async def test_symlink_inside_root_still_works(self, tmp_path: Path) -> None:
        root = tmp_path / "root"
        storage = LocalStorage(root)
        await storage.put("real/file", b"content")
        (root / "alias").symlink_to(root / "real", target_is_directory=True)

        assert await storage.get("alias/file") == b"content"


class TestGCSStorage:
    async def test_check_fails_for_missing_bucket(self, gcs_emulator: Any) -> None:
        storage = GCSStorage("no-such-bucket")
        try:
            with pytest.raises(StorageError, match="no-such-bucket"):
                await storage.check()
        finally:
            await storage.close()

    async def test_unreachable_server_is_a_storage_error(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{_free_port()}")
        storage = GCSStorage(BUCKET, timeout=5)
        try:
            with pytest.raises(StorageError):
                await storage.check()
            with pytest.raises(StorageError):
                await storage.get("anything")
        finally:
            await storage.close()

    async def test_close_is_idempotent_and_reopens(self, gcs_emulator: Any) -> None:
        storage = GCSStorage(BUCKET)
        await storage.close()  # never used: nothing to close
        await storage.put("reopen", b"1")
        await storage.close()

        assert await storage.get("reopen") == b"1"
        await storage.close()
        await storage.close()
        gcs_emulator.wipe(keep_buckets=True)

    async def test_create_storage_builds_it_from_settings(self, settings: Settings) -> None:
        gcs = settings.model_copy(update={"storage_backend": "gcs", "gcs_bucket": BUCKET})

        storage = create_storage(gcs)

        assert isinstance(storage, GCSStorage)
        assert storage.bucket == BUCKET
        await storage.close()

    def test_create_storage_requires_a_bucket(self, settings: Settings) -> None:
        gcs = settings.model_copy(update={"storage_backend": "gcs", "gcs_bucket": None})

        with pytest.raises(StorageError, match="OUTREACH_GCS_BUCKET"):
            create_storage(gcs)
