"""API keys: ``Authorization: Bearer <key>``, checked against configured SHA-256 hashes in
constant time. A job's owner is derived from the key's hash, never from the key itself."""

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from worker.settings import Settings, hash_key

ANONYMOUS = "anonymous"


def owner_for(authorization: str | None, settings: Settings) -> str:
    if not settings.auth_enabled:
        return ANONYMOUS
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing API key: send 'Authorization: Bearer <key>'", {"WWW-Authenticate": "Bearer"}
        )
    digest = hash_key(token.strip())
    matched = False
    for accepted in settings.api_key_hashes:  # no early exit: the time taken says nothing about which key
        matched |= hmac.compare_digest(accepted.encode(), digest.encode())
    if not matched:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid API key", {"WWW-Authenticate": "Bearer"})
    return owner_of_hash(digest)


def owner_of_hash(key_hash: str) -> str:
    """The owner recorded on the jobs of the key with this hash."""
    return "key-" + key_hash.removeprefix("sha256:")[:16]


async def current_owner(request: Request) -> str:
    # async although it never awaits: FastAPI runs a sync dependency in its thread pool, a thread
    # hop per request for a hash comparison
    return owner_for(request.headers.get("authorization"), request.app.state.services.settings)


Owner = Annotated[str, Depends(current_owner)]
