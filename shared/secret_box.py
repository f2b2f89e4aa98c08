"""Fernet encryption of secrets the platform stores for users (connector API keys, database URLs).

One key for the platform: `AIETL_VECTOR_SINK_SECRET_KEY` (its historical name, kept so existing
deployments keep decrypting) or, when unset (embedded mode), a key file created under `data_dir`
with mode 0600. Sealed values are stored; opened values live only in memory and are never logged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from aietl.shared.settings import Settings

KEY_FILE = "vector_sink.key"


class SecretBox:
    def __init__(self, settings: Settings) -> None:
        configured = settings.vector_sink_secret_key
        key = configured.get_secret_value().encode() if configured else self._key_file(settings.data_dir)
        self._fernet = Fernet(key)

    @staticmethod
    def _key_file(data_dir: Path) -> bytes:
        path = data_dir / KEY_FILE
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            try:
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process of this data dir created it first
                return path.read_bytes().strip()
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(Fernet.generate_key())
        return path.read_bytes().strip()

    def seal(self, secrets: dict[str, str]) -> str | None:
        if not secrets:
            return None
        return self._fernet.encrypt(json.dumps(secrets).encode()).decode()

    def open(self, sealed: str | None) -> dict[str, str]:
        if not sealed:
            return {}
        try:
            return json.loads(self._fernet.decrypt(sealed.encode()))
        except InvalidToken:
            raise ValueError("stored secrets cannot be decrypted with the configured key") from None
