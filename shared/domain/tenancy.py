"""Who is asking: a tenant's key sees its own jobs, connections and dead letters; an admin
key sees everything."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TENANT = "default"


@dataclass(frozen=True)
class Principal:
    tenant_id: str | None  # None for an admin key
    is_admin: bool

    def sees(self, tenant_id: str) -> bool:
        return self.is_admin or tenant_id == self.tenant_id


ADMIN = Principal(tenant_id=None, is_admin=True)
