"""Connection settings: every limit and timer default, in one frozen value.

Defaults follow the current official clients (client-sdk-js, rust-sdks); the protocol field or
reason behind each is given beside it.
"""

from __future__ import annotations

import attrs

from lkproto._version import __version__

__all__ = ["Config"]


@attrs.frozen(kw_only=True)
class Config:
    """Settings for one `Connection`. Every bound the core enforces lives here."""

    #: Signal protocol version sent in `ClientInfo.protocol`; JS and Rust send 17.
    protocol_version: int = 17
    #: `ClientInfo.client_protocol`: the peer-to-peer feature level we advertise. 0 = RPC v1
    #: packets and uncompressed header/chunk/trailer streams only. Raise it only when the
    #: features it promises (RPC v2, inline/compressed streams) are implemented.
    client_protocol: int = 0
    #: `ClientInfo.capabilities` (enum values); none until compression is supported.
    capabilities: tuple[int, ...] = ()
    #: `ClientInfo.version`; the SDK field is always PYTHON (9).
    sdk_version: str = __version__
    #: `ClientInfo.os`, informational.
    os_name: str = ""
    #: `ConnectionSettings.auto_subscribe`; a data-plane client subscribes to no media.
    auto_subscribe: bool = False
    #: Seconds to wait for the first signal message (`join`) after opening; JS and Rust use 5.
    join_timeout: float = 5.0
    #: Seconds to wait for a `RequestResponse` to an `UpdateParticipantMetadata`; Rust uses 5.
    metadata_request_timeout: float = 5.0
    #: Most metadata/name/attribute updates awaiting a response at once.
    max_pending_metadata_requests: int = 64
    #: Upper bound on one data channel message; SCTP max-message-size default in JS/Rust.
    max_data_message_size: int = 64_000
    #: Bytes of sent reliable packets kept for replay after a resume (oldest evicted first).
    replay_buffer_bytes: int = 4 * 1024 * 1024
    #: Bytes of data packets queued while a data channel is not yet open.
    max_queued_send_bytes: int = 4 * 1024 * 1024
    #: Seconds a per-sender receive sequence is remembered for de-duplication (JS: 30 s).
    dedup_ttl: float = 30.0
    #: Most senders tracked for de-duplication; the stalest entry is forgotten beyond this.
    max_dedup_senders: int = 4096

    def __attrs_post_init__(self) -> None:
        for name in (
            "join_timeout",
            "metadata_request_timeout",
            "dedup_ttl",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"Config.{name} must be positive")
        for name in (
            "max_pending_metadata_requests",
            "max_data_message_size",
            "max_dedup_senders",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"Config.{name} must be at least 1")
        for name in ("replay_buffer_bytes", "max_queued_send_bytes"):
            if getattr(self, name) < 0:
                raise ValueError(f"Config.{name} must not be negative")
