"""Join tokens for tests, through `lkproto.tokens` with the harness server's credentials."""

from __future__ import annotations

import time
from collections.abc import Mapping

from lkproto import tokens
from lkproto.tokens import VideoGrants

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
    """A join token for `identity` in `room`, signed with the harness server's credentials."""
    grants = VideoGrants(
        room=room,
        room_join=True,
        can_publish=can_publish,
        can_subscribe=can_subscribe,
        can_publish_data=can_publish_data,
        can_update_own_metadata=can_update_own_metadata,
        hidden=hidden,
    )
    return tokens.mint_token(
        api_key,
        api_secret,
        now=int(time.time()) if now is None else now,
        grants=grants,
        identity=identity,
        name=name,
        metadata=metadata,
        attributes=attributes,
        kind=kind,
        ttl=ttl,
    )
