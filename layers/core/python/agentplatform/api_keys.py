"""API keys for machine clients: created by a tenant's admins, stored only as a hash, revocable.

A key reads `apk_<key id>_<secret>`: the id finds the row, the secret proves possession. The secret is 256 random
bits, so one SHA-256 is the right hash (a slow password hash protects guessable secrets; these are not), and
the stored hash is compared in constant time. The row keeps the tenant, the scopes and ACL groups the key
grants, who created it and when, when it was last used (written at most once a minute) and when it was
revoked. Revoked keys stay listed for audit.

Rows of the `api_keys` table: `key#<id>` / `key` is the key; `tenant#<tenant>` / `key#<id>` lists a tenant's
keys (the tenant is not part of the key, so a key's text does not name its tenant).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field

from agentplatform.errors import NotFound
from agentplatform.ports import KeyValueTable

PREFIX = "apk_"
_KEY = re.compile(r"^apk_([0-9a-f]{16})_([0-9a-f]{64})$")
LAST_USED_RESOLUTION_S = 60  # last_used_at is written at most this often per key


class ApiKey(BaseModel):
    key_id: str
    tenant: str
    name: str
    scopes: list[str]
    groups: list[str] = Field(default_factory=list)
    created_at: str
    created_by: str
    expires_at: str | None = None
    last_used_at: str | None = None
    revoked_at: str | None = None

    def usable(self, now: datetime) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or datetime.fromisoformat(self.expires_at) > now


def looks_like_api_key(credential: str) -> bool:
    return credential.startswith(PREFIX)


class ApiKeyStore:
    def __init__(self, table: KeyValueTable, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._clock = clock

    def create(
        self,
        *,
        tenant: str,
        name: str,
        scopes: Iterable[str],
        groups: Iterable[str] = (),
        created_by: str,
        expires_in_days: int | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key for the tenant: its row and the key's text (shown once, never stored)."""
        key_id, secret = secrets.token_hex(8), secrets.token_hex(32)
        now = self._now()
        key = ApiKey(
            key_id=key_id,
            tenant=tenant,
            name=name,
            scopes=sorted(set(scopes)),
            groups=sorted(set(groups)),
            created_at=now.isoformat(),
            created_by=created_by,
            expires_at=(now + timedelta(days=expires_in_days)).isoformat() if expires_in_days else None,
        )
        self._table.put({**_row_key(key_id), **key.model_dump(exclude_none=True), "secret_sha256": _digest(secret)})
        self._table.put({"pk": f"tenant#{tenant}", "sk": f"key#{key_id}", "key_id": key_id})
        return key, f"{PREFIX}{key_id}_{secret}"

    def list(self, tenant: str) -> list[ApiKey]:
        keys: list[ApiKey] = []
        after = None
        while True:
            rows, after = self._table.query({"pk": f"tenant#{tenant}"}, after=after)
            for row in rows:
                key = self._get(row["key_id"])
                if key is not None and key.tenant == tenant:
                    keys.append(key)
            if after is None:
                return sorted(keys, key=lambda k: k.created_at)

    def revoke(self, tenant: str, key_id: str) -> ApiKey:
        """Revoke one of the tenant's keys (idempotent); another tenant's key is NotFound, like a missing one."""
        key = self._get(key_id)
        if key is None or key.tenant != tenant:
            raise NotFound(f"no API key {key_id!r}", key_id=key_id)
        if key.revoked_at is None:
            key.revoked_at = self._now().isoformat()
            self._table.update(_row_key(key_id), {"revoked_at": key.revoked_at})
        return key

    def verify(self, credential: str) -> ApiKey | None:
        """The key a presented credential proves, if it is well formed, known, not revoked and not expired."""
        match = _KEY.match(credential)
        if match is None:
            return None
        key_id, secret = match.groups()
        row = self._table.get(_row_key(key_id))
        if row is None or not hmac.compare_digest(str(row.get("secret_sha256", "")), _digest(secret)):
            return None
        key = _from_row(row)
        now = self._now()
        if not key.usable(now):
            return None
        last = datetime.fromisoformat(key.last_used_at) if key.last_used_at else None
        if last is None or (now - last).total_seconds() >= LAST_USED_RESOLUTION_S:
            key.last_used_at = now.isoformat()
            self._table.update(_row_key(key_id), {"last_used_at": key.last_used_at})
        return key

    def _get(self, key_id: str) -> ApiKey | None:
        row = self._table.get(_row_key(key_id))
        return _from_row(row) if row else None

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)


def _row_key(key_id: str) -> dict[str, str]:
    return {"pk": f"key#{key_id}", "sk": "key"}


def _from_row(row: dict) -> ApiKey:
    return ApiKey.model_validate({k: v for k, v in row.items() if k in ApiKey.model_fields})


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
