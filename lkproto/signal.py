"""SignalCodec: the signal channel's bytes and URLs, with no state and no I/O.

Every WebSocket message is one serialized protobuf: `SignalRequest` from us, `SignalResponse`
from the server (protocol-reference D.1-D.3). This module builds the join URL, encodes the
requests a data-plane client sends, and decodes responses, turning a parse failure into a
`RemoteProtocolError`. It can be used alone by an alternative SDK.

Join URLs (D.1):
- `/rtc/v1` (single peer connection): one query parameter, `join_request`, the base64url
  (with padding) of a `WrappedJoinRequest` whose payload is the `JoinRequest`, gzipped when
  that is smaller (as Rust does).
- `/rtc` (dual peer connection, the fallback on a 404): the same facts as query parameters.
The token is never put in the URL; it travels in `Authorization: Bearer`.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Mapping, Sequence
from urllib.parse import urlencode, urlsplit, urlunsplit

from google.protobuf.message import DecodeError

from lkproto._pb import participants_pb2 as ppb
from lkproto._pb import signal_pb2 as spb
from lkproto._pb import tracks_pb2 as tpb
from lkproto.config import Config
from lkproto.errors import LocalProtocolError, RemoteProtocolError

__all__ = ["SignalCodec"]

SDK_PYTHON = 9  # ClientInfo.SDK.PYTHON
_CAPABILITY_NAMES = {1: "CAP_PACKET_TRAILER", 2: "CAP_COMPRESSION_DEFLATE_RAW"}


def _gzip(data: bytes) -> bytes:
    # gzip framing via zlib (wbits=31): deterministic (mtime 0) and free of file I/O.
    compressor = zlib.compressobj(level=6, wbits=31)
    return compressor.compress(data) + compressor.flush()


class SignalCodec:
    """Encode requests and decode responses for the signal WebSocket."""

    def __init__(self, config: Config) -> None:
        self.config = config

    # -- join -------------------------------------------------------------------------------

    def client_info(self) -> ppb.ClientInfo:
        """The `ClientInfo` we send in the join URL (SDK, version, protocol, capabilities)."""
        c = self.config
        return ppb.ClientInfo(
            sdk=SDK_PYTHON,  # type: ignore[arg-type]
            version=c.sdk_version,
            protocol=c.protocol_version,
            os=c.os_name,
            client_protocol=c.client_protocol,
            capabilities=list(c.capabilities),  # type: ignore[arg-type]
            # The SDK enum has no value for us; other_sdks ("name:version") names lkproto.
            other_sdks=f"lkproto:{c.sdk_version}",
        )

    def join_request(
        self,
        *,
        metadata: str = "",
        attributes: Mapping[str, str] | None = None,
        publisher_offer: str | None = None,
        resume_sid: str = "",
        reconnect_reason: int = 0,
    ) -> spb.JoinRequest:
        """The `JoinRequest`; with `resume_sid`, a resume of that participant (D.8 step 2)."""
        request = spb.JoinRequest(
            client_info=self.client_info(),
            connection_settings=spb.ConnectionSettings(auto_subscribe=self.config.auto_subscribe),
            metadata=metadata,
            participant_attributes=dict(attributes or {}),
        )
        if resume_sid:
            request.reconnect = True
            request.participant_sid = resume_sid
            request.reconnect_reason = reconnect_reason  # type: ignore[assignment]
        if publisher_offer is not None:
            request.publisher_offer.CopyFrom(
                spb.SessionDescription(type="offer", sdp=publisher_offer)
            )
        return request

    @staticmethod
    def _base(url: str, path: str) -> tuple[str, str, str]:
        parts = urlsplit(url)
        scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
        if scheme is None or not parts.netloc:
            raise LocalProtocolError(
                f"connect: {url!r} is not a ws://, wss://, http:// or https:// URL", call="connect"
            )
        if parts.query or parts.fragment:
            raise LocalProtocolError(
                "connect: the server URL must not carry a query", call="connect"
            )
        return scheme, parts.netloc, parts.path.rstrip("/") + path

    def validate_url(self, url: str) -> None:
        """Raise `LocalProtocolError` unless `url` is a usable ws(s)/http(s) server URL."""
        self._base(url, "")

    def join_url_v1(self, url: str, request: spb.JoinRequest) -> str:
        """The `/rtc/v1` URL carrying `request` as a `WrappedJoinRequest`."""
        scheme, netloc, path = self._base(url, "/rtc/v1")
        raw = request.SerializeToString()
        packed = _gzip(raw)
        wrapped = (
            spb.WrappedJoinRequest(compression=spb.WrappedJoinRequest.GZIP, join_request=packed)
            if len(packed) < len(raw)
            else spb.WrappedJoinRequest(compression=spb.WrappedJoinRequest.NONE, join_request=raw)
        )
        param = base64.urlsafe_b64encode(wrapped.SerializeToString()).decode("ascii")
        return urlunsplit((scheme, netloc, path, urlencode({"join_request": param}), ""))

    def join_url_v0(
        self,
        url: str,
        *,
        attributes: Mapping[str, str] | None = None,
        metadata: str = "",
        resume_sid: str = "",
        reconnect_reason: int = 0,
    ) -> str:
        """The `/rtc` (dual peer connection) URL; the same facts as query parameters.

        With `resume_sid`: `reconnect=1&sid=...&reconnect_reason=...` (a resume, D.8)."""
        scheme, netloc, path = self._base(url, "/rtc")
        c = self.config
        params: list[tuple[str, str]] = [
            ("auto_subscribe", "1" if c.auto_subscribe else "0"),
            ("sdk", "python"),
            ("version", c.sdk_version),
            ("protocol", str(c.protocol_version)),
            ("client_protocol", str(c.client_protocol)),
            ("adaptive_stream", "0"),
        ]
        if c.os_name:
            params.append(("os", c.os_name))
        if c.capabilities:
            names = [_CAPABILITY_NAMES.get(v, str(v)) for v in c.capabilities]
            params.append(("capabilities", ",".join(names)))
        if attributes:
            blob = json.dumps(dict(attributes), separators=(",", ":")).encode()
            params.append(("attributes", base64.urlsafe_b64encode(blob).decode("ascii")))
        if metadata:
            params.append(("metadata", metadata))
        if resume_sid:
            params += [
                ("reconnect", "1"),
                ("sid", resume_sid),
                ("reconnect_reason", str(reconnect_reason)),
            ]
        return urlunsplit((scheme, netloc, path, urlencode(params), ""))

    # -- requests ---------------------------------------------------------------------------

    @staticmethod
    def offer(sdp: str) -> bytes:
        """A `SignalRequest` carrying our SDP offer."""
        return spb.SignalRequest(
            offer=spb.SessionDescription(type="offer", sdp=sdp)
        ).SerializeToString()

    @staticmethod
    def answer(sdp: str) -> bytes:
        """A `SignalRequest` carrying our SDP answer (for `target`)."""
        return spb.SignalRequest(
            answer=spb.SessionDescription(type="answer", sdp=sdp)
        ).SerializeToString()

    @staticmethod
    def trickle(candidate_init: str, target: int) -> bytes:
        """A `SignalRequest` carrying one ICE candidate of ours (for `target`)."""
        return spb.SignalRequest(
            trickle=spb.TrickleRequest(candidateInit=candidate_init, target=target)  # type: ignore[arg-type]
        ).SerializeToString()

    @staticmethod
    def ping(timestamp_ms: int, rtt_ms: int) -> bytes:
        """A `SignalRequest` ping (`ping_req` with our timestamp and last RTT)."""
        return spb.SignalRequest(
            ping_req=spb.Ping(timestamp=timestamp_ms, rtt=rtt_ms)
        ).SerializeToString()

    @staticmethod
    def leave(reason: int, action: int = 0) -> bytes:
        """A `SignalRequest` saying we leave (`LeaveRequest` with `reason`)."""
        return spb.SignalRequest(
            leave=spb.LeaveRequest(reason=reason, action=action)  # type: ignore[arg-type]
        ).SerializeToString()

    @staticmethod
    def sync_state(
        *,
        offer: str | None,
        answer: str | None,
        receive_states: Mapping[str, int],
        publish_tracks: Sequence[tpb.TrackPublishedResponse] = (),
        subscription: tpb.UpdateSubscription | None = None,
        track_sids_disabled: Sequence[str] = (),
        publish_data_tracks: Sequence[tpb.PublishDataTrackResponse] = (),
    ) -> bytes:
        """`SyncState` after a resume (D.8 step 4): the negotiated session descriptions, the
        last reliable sequence received per publisher (A.7), the media tracks (every published
        track with its full TrackInfo, our subscription choices and the tracks we disabled;
        `lkproto.tracks`, media findings F5.1) and our published data tracks (field 8;
        protocol-reference-2 1.3: the server starts a full reconnect if it lists a track the
        server does not have). Data-track subscriptions (field 9) are not sent, as in Rust
        (1.13.5 ignores them)."""
        state = spb.SyncState(
            datachannel_receive_states=[
                spb.DataChannelReceiveState(publisher_sid=sid, last_seq=seq)
                for sid, seq in sorted(receive_states.items())
            ],
            publish_tracks=list(publish_tracks),
            track_sids_disabled=list(track_sids_disabled),
            publish_data_tracks=publish_data_tracks,
        )
        if subscription is not None:
            state.subscription.CopyFrom(subscription)
        if offer is not None:
            state.offer.CopyFrom(spb.SessionDescription(type="offer", sdp=offer))
        if answer is not None:
            state.answer.CopyFrom(spb.SessionDescription(type="answer", sdp=answer))
        return spb.SignalRequest(sync_state=state).SerializeToString()

    @staticmethod
    def simulate(**scenario: int | bool) -> bytes:
        """`SignalRequest.simulate` with one `SimulateScenario` field set (testing only)."""
        return spb.SignalRequest(
            simulate=spb.SimulateScenario(**scenario)  # type: ignore[arg-type]
        ).SerializeToString()

    @staticmethod
    def update_metadata(
        *, request_id: int, name: str, metadata: str, attributes: Mapping[str, str]
    ) -> bytes:
        """A `SignalRequest` asking the server to update our metadata, name or attributes."""
        return spb.SignalRequest(
            update_metadata=spb.UpdateParticipantMetadata(
                request_id=request_id, name=name, metadata=metadata, attributes=dict(attributes)
            )
        ).SerializeToString()

    # -- responses --------------------------------------------------------------------------

    @staticmethod
    def decode(data: bytes) -> spb.SignalResponse:
        """Parse one server message; raises `RemoteProtocolError` if it is not a SignalResponse."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise RemoteProtocolError("signal message is not binary (JSON mode is not used)")
        try:
            return spb.SignalResponse.FromString(bytes(data))
        except (DecodeError, RuntimeWarning, ValueError) as exc:
            raise RemoteProtocolError(
                f"malformed SignalResponse ({len(data)} bytes): {exc}"
            ) from None
