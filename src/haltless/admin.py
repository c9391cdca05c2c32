"""Administrative actions that run without a server (CLI `haltless admin ...`, `haltless demo`)."""

from __future__ import annotations

import asyncio

from haltless.core.secrets import hash_password
from haltless.server.state import now_micros
from haltless.settings import Settings
from haltless.store import accounts
from haltless.store.database import create_engine, make_private_dir, migrate


async def create_tenant(settings: Settings, *, name: str, email: str, password: str) -> tuple[str, str]:
    """A tenant and its first admin user; returns (tenant_id, user_id)."""
    make_private_dir(settings.data_dir)
    engine = create_engine(settings.effective_database_url)
    try:
        await migrate(engine)
        password_hash = await asyncio.to_thread(hash_password, password)
        async with engine.begin() as conn:
            return await accounts.create_tenant(
                conn, name=name, email=email, password_hash=password_hash, now=now_micros()
            )
    finally:
        await engine.dispose()
