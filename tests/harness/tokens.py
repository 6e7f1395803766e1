"""Mint LiveKit access tokens (HS256 JWTs) for tests.

The claim layout follows LiveKit's access-token format: `iss` is the API key, `sub` the
identity, `video` the grant object (camelCase keys), plus optional `name`, `metadata`,
`attributes` and `kind`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import jwt

API_KEY = "lkproto-dev-key"
# livekit-server wants secrets of at least 32 characters.
API_SECRET = "lkproto-dev-secret-0123456789abcdefghijklmnop"


def mint_token(
    identity: str,
    room: str,
    *,
    name: str | None = None,
    metadata: str | None = None,
    attributes: Mapping[str, str] | None = None,
    kind: str | None = None,
    can_publish: bool | None = None,
    can_subscribe: bool | None = None,
    can_publish_data: bool | None = None,
    can_update_own_metadata: bool | None = None,
    hidden: bool | None = None,
    ttl: int = 3600,
    api_key: str = API_KEY,
    api_secret: str = API_SECRET,
    now: int | None = None,
) -> str:
    issued = int(time.time()) if now is None else now
    video: dict[str, object] = {"roomJoin": True, "room": room}
    for key, value in (
        ("canPublish", can_publish),
        ("canSubscribe", can_subscribe),
        ("canPublishData", can_publish_data),
        ("canUpdateOwnMetadata", can_update_own_metadata),
        ("hidden", hidden),
    ):
        if value is not None:
            video[key] = value
    claims: dict[str, object] = {
        "iss": api_key,
        "sub": identity,
        "nbf": issued - 10,
        "exp": issued + ttl,
        "video": video,
    }
    if name is not None:
        claims["name"] = name
    if metadata is not None:
        claims["metadata"] = metadata
    if attributes:
        claims["attributes"] = dict(attributes)
    if kind is not None:
        claims["kind"] = kind
    return jwt.encode(claims, api_secret, algorithm="HS256")
