"""Encryption at rest for destination credentials (Fernet, key from settings)."""

import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


def _fernet() -> Fernet:
    secret = settings.FIELD_ENCRYPTION_KEY or settings.SECRET_KEY
    key = base64.urlsafe_b64encode(hashlib.sha256(f"credentials:{secret}".encode()).digest())
    return Fernet(key)


def encrypt_json(value: dict) -> str:
    if not value:
        return ""
    return _fernet().encrypt(json.dumps(value, sort_keys=True).encode()).decode()


def decrypt_json(token: str) -> dict:
    if not token:
        return {}
    try:
        return json.loads(_fernet().decrypt(token.encode()))
    except InvalidToken as error:
        raise ValueError("destination credentials cannot be decrypted with the configured key") from error
