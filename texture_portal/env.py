"""Reading configuration from the environment (12-factor), with the embedded defaults kept in one place."""

import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet

TRUE_WORDS = {"1", "true", "yes", "on"}


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    return value.strip().lower() in TRUE_WORDS


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value in (None, ""):
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def local_secret(path: Path, make) -> str:
    """A secret generated once for this checkout and kept under var/ (never in code, never committed).

    Production passes the value through the environment instead; this only serves the embedded default.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(make())
    return path.read_text().strip()


def make_secret_key() -> str:
    return secrets.token_urlsafe(50)


def make_fernet_key() -> str:
    return Fernet.generate_key().decode()
