"""Mint LiveKit access tokens: HS256 JWTs signed with an API secret.

A pure function of its arguments: the issue time is passed in (``now``, seconds since the
epoch), so the same arguments always give the same bytes. The claim layout is LiveKit's
access-token format: ``iss`` the API key, ``sub`` the identity, ``nbf``/``exp`` the validity
window, ``video`` the grants (camelCase keys), and optional ``name``, ``metadata``,
``attributes`` and ``kind`` ("standard", "agent", ...). The secret never appears in the
result or in any ``repr``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping

import attrs

from lkproto._repr import plain_repr

__all__ = ["VideoGrants", "mint_token"]

# livekit-server refuses tokens that were issued "in the future" by more than its clock
# skew allowance; backdating nbf by a few seconds keeps freshly minted tokens valid on
# machines whose clocks differ slightly.
_NOT_BEFORE_SKEW = 10


@attrs.frozen(kw_only=True)
@plain_repr
class VideoGrants:
    """The ``video`` grant object. ``None`` leaves a permission at the server's default."""

    room: str = ""
    room_join: bool = False
    room_create: bool = False
    room_list: bool = False
    room_admin: bool = False
    room_record: bool = False
    can_publish: bool | None = None
    can_subscribe: bool | None = None
    can_publish_data: bool | None = None
    can_update_own_metadata: bool | None = None
    hidden: bool | None = None

    def to_claim(self) -> dict[str, object]:
        """The grants as the token's `video` claim (camelCase keys, unset permissions left out)."""
        claim: dict[str, object] = {}
        for field in attrs.fields(type(self)):
            value = getattr(self, field.name)
            # Tri-state permissions are sent whenever set (False matters); the rest when set.
            if value is None or (field.default is not None and not value):
                continue
            name = field.name
            head, *rest = name.split("_")
            claim[head + "".join(part.title() for part in rest)] = value
        return claim


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint_token(
    api_key: str,
    api_secret: str,
    *,
    now: int,
    grants: VideoGrants,
    identity: str = "",
    name: str | None = None,
    metadata: str | None = None,
    attributes: Mapping[str, str] | None = None,
    kind: str | None = None,
    ttl: int = 6 * 3600,
) -> str:
    """Return a signed token valid from ``now - 10`` to ``now + ttl`` (seconds)."""
    if not api_key or not api_secret:
        raise ValueError("an API key and an API secret are required to mint a token")
    if ttl <= 0:
        raise ValueError(f"ttl must be positive, got {ttl}")
    claims: dict[str, object] = {
        "iss": api_key,
        "nbf": now - _NOT_BEFORE_SKEW,
        "exp": now + ttl,
        "video": grants.to_claim(),
    }
    if identity:
        claims["sub"] = identity
    if name is not None:
        claims["name"] = name
    if metadata is not None:
        claims["metadata"] = metadata
    if attributes:
        claims["attributes"] = dict(attributes)
    if kind is not None:
        claims["kind"] = kind
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = hmac.new(api_secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"
