"""Model fields shared by the apps."""

import json
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is empty.")
    return MultiFernet([Fernet(key.encode()) for key in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


class EncryptedJSONField(models.TextField):
    """A JSON object stored encrypted (Fernet: AES-128-CBC + HMAC-SHA256, from `cryptography`).

    The database only ever holds the token. Keys come from FIELD_ENCRYPTION_KEYS; the first encrypts and all
    decrypt, so rotation is: prepend a new key, re-save rows, drop the old key. Not searchable by design.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("default", dict)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return {}
        try:
            return json.loads(fernet().decrypt(value.encode()))
        except InvalidToken as exc:
            raise ImproperlyConfigured(
                f"Cannot decrypt {self.model.__name__}.{self.name}: FIELD_ENCRYPTION_KEYS lacks the key it was "
                "written with."
            ) from exc

    def to_python(self, value):
        if isinstance(value, dict):
            return value
        if value in (None, ""):
            return {}
        return json.loads(value)

    def get_prep_value(self, value):
        if value is None:
            value = {}
        return fernet().encrypt(json.dumps(value, sort_keys=True).encode()).decode()

    def value_to_string(self, obj):
        return "<encrypted>"
