"""Reading access tokens the way livekit-server does: HS256 JWTs signed with the API secret.

Theory of operation
- A token is `header.payload.signature`, base64url without padding. The signature is
  HMAC-SHA256 of `header.payload` under the API secret; `iss` names the API key. A token that
  does not verify, names another key, or is outside its `nbf`/`exp` window (checked against
  the room's wall clock, never the machine's) is refused with HTTP 401 and the server's own
  text, "invalid token: <token>, error: <why>": livekit-server echoes the token in that body
  (field-notes 4.3), so a client must redact it, and a MemoryRoom tests that it does.
- The `video` grant decides the permissions, with the defaults of livekit's `auth/grants.go`
  (protocol-reference A.5, D.5): canPublish and canSubscribe default to true, canPublishData
  to canPublish, canUpdateOwnMetadata to false. `kind` maps "agent", "sip", ... to the
  `ParticipantInfo.Kind` values.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping

import attrs

__all__ = ["Grants", "TokenError", "read_token"]

_KINDS = {
    "standard": 0,
    "ingress": 1,
    "egress": 2,
    "sip": 3,
    "agent": 4,
    "connector": 7,
    "bridge": 8,
}


class TokenError(Exception):
    """The token was refused; the message is the reason after "error: "."""


@attrs.frozen(kw_only=True)
class Grants:
    """What a verified token allows, with livekit's defaults applied."""

    identity: str
    room: str
    room_join: bool
    name: str = ""
    metadata: str = ""
    attributes: Mapping[str, str] = attrs.field(factory=dict)
    kind: int = 0
    can_publish: bool = True
    can_subscribe: bool = True
    can_publish_data: bool = True
    can_update_metadata: bool = False
    hidden: bool = False


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _flag(video: Mapping[str, object], key: str, default: bool) -> bool:
    value = video.get(key)
    return value if isinstance(value, bool) else default


def _text(claims: Mapping[str, object], key: str) -> str:
    value = claims.get(key)
    return value if isinstance(value, str) else ""


def read_token(token: str, *, api_key: str, api_secret: str, unix_time: float) -> Grants:
    """Verify `token` and return its grants; raises `TokenError` saying why not."""
    try:
        header_b64, payload_b64, signature_b64 = token.split(".")
        header = json.loads(_unb64(header_b64))
        claims = json.loads(_unb64(payload_b64))
        signature = _unb64(signature_b64)
    except ValueError as exc:  # bad base64 (binascii.Error), JSON, UTF-8 or part count
        raise TokenError(f"malformed token: {exc}") from None
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise TokenError("unsupported signing algorithm (HS256 only)")
    if not isinstance(claims, dict):
        raise TokenError("the payload is not a JSON object")
    if claims.get("iss") != api_key:
        raise TokenError(f"invalid API key: {claims.get('iss')}")
    expected = hmac.new(
        api_secret.encode(), f"{header_b64}.{payload_b64}".encode("ascii"), hashlib.sha256
    ).digest()
    if not hmac.compare_digest(expected, signature):
        raise TokenError("signature is invalid")
    nbf, exp = claims.get("nbf"), claims.get("exp")
    if isinstance(nbf, int | float) and unix_time < nbf:
        raise TokenError("token is not valid yet")
    if isinstance(exp, int | float) and unix_time >= exp:
        raise TokenError("token is expired")
    video = claims.get("video")
    video = video if isinstance(video, dict) else {}
    attributes = claims.get("attributes")
    can_publish = _flag(video, "canPublish", True)
    return Grants(
        identity=_text(claims, "sub"),
        room=_text(video, "room"),
        room_join=_flag(video, "roomJoin", False),
        name=_text(claims, "name"),
        metadata=_text(claims, "metadata"),
        attributes={
            str(k): str(v) for k, v in (attributes if isinstance(attributes, dict) else {}).items()
        },
        kind=_KINDS.get(_text(claims, "kind"), 0),
        can_publish=can_publish,
        can_subscribe=_flag(video, "canSubscribe", True),
        can_publish_data=_flag(video, "canPublishData", can_publish),
        can_update_metadata=_flag(video, "canUpdateOwnMetadata", False),
        hidden=_flag(video, "hidden", False),
    )
