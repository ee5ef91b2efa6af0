"""Secrets at rest (refresh tokens, SMTP passwords) encrypted with MultiFernet.

Keys come from ``OUTREACH_ENCRYPTION_KEYS`` (comma-separated Fernet keys, newest
first): the first key encrypts, every key decrypts, so a key is rotated by
putting a new one in front and running ``outreach rotate-keys``. Without keys the
one key is derived from ``OUTREACH_SECRET_KEY`` (which production already refuses
to leave at its default), so the embedded setup works with no extra setting.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from outreach.config import Settings, get_settings


class SecretDecryptionFailed(RuntimeError):
    """A stored secret was encrypted with a key that is no longer configured."""


@lru_cache(maxsize=8)  # read on every Gmail call (fernet_for): a hash is not free
def derived_key(secret_key: str) -> bytes:
    """A Fernet key derived from the app's secret key (domain-separated)."""
    digest = hashlib.sha256(b"outreach-encryption-key:" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest)


def fernet_for(settings: Settings) -> MultiFernet:
    keys = tuple(key.get_secret_value().encode() for key in settings.encryption_keys)
    if not keys:
        keys = (derived_key(settings.secret_key.get_secret_value()),)
    return _multi_fernet(keys)


@lru_cache(maxsize=16)
def _multi_fernet(keys: tuple[bytes, ...]) -> MultiFernet:
    # Built once per key set: every Gmail call reads the access token through it.
    return MultiFernet([Fernet(key) for key in keys])


def encrypt_secret(plaintext: str, *, settings: Settings | None = None) -> str:
    return fernet_for(settings or get_settings()).encrypt(plaintext.encode()).decode()


def decrypt_secret(ciphertext: str, *, settings: Settings | None = None) -> str:
    try:
        return fernet_for(settings or get_settings()).decrypt(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise SecretDecryptionFailed("no configured encryption key opens this secret") from exc


def decrypt_hot_secret(ciphertext: str) -> str:
    """:func:`decrypt_secret` for a secret read on every call (a Gmail access token,
    once per send): the plaintexts of the last 1,024 ciphertexts seen are kept in
    memory, per key set, so a tick does not pay for decryption once per email."""
    return _decrypt_cached(fernet_for(get_settings()), ciphertext)


@lru_cache(maxsize=1024)
def _decrypt_cached(fernet: MultiFernet, ciphertext: str) -> str:
    try:
        return fernet.decrypt(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise SecretDecryptionFailed("no configured encryption key opens this secret") from exc


def rotate_secret(ciphertext: str, *, settings: Settings | None = None) -> str:
    """The same secret re-encrypted with the first (newest) key."""
    try:
        return fernet_for(settings or get_settings()).rotate(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise SecretDecryptionFailed("no configured encryption key opens this secret") from exc
