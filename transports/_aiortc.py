"""The WebRTC side, on aiortc, running inside an asyncio event loop.

`AiortcPeer` carries out the core's peer commands in order on one worker task (SDP operations
are coroutines and must not interleave), except `SendDataPacket` and `SendDataTrackFrame`,
which aiortc sends synchronously, so they go out at once and keep the core's order relative
to other sends.
Outcomes are reported to a `PeerListener`: directly when the listener lives in this loop
(anyio on asyncio), through `_asyncio_bridge` otherwise.

Channels (protocol-reference A.3): we create `_reliable` (ordered, unlimited retransmits) and
`_lossy` (unordered, no retransmits) on the publisher. The server opens channels with the same
labels towards us, on the subscriber PC (dual-PC) or on the publisher PC (single-PC); we adopt
them by label for receiving and ignore other labels. Messages arriving on our own channels are
read too. `_data_track` (protocol-reference-2 1.4) is created and read the same way: in
single-PC mode the server writes subscribed data-track packets back on the one we created.

Data-track frames are lossy (rust-sdks `DataChannelSender`): a frame's packets are sent, all
of them, only while `_data_track`'s buffered amount is at most its low threshold (8 KiB, set
by the session from `MARKS`); otherwise the frame waits in a one-frame slot, replacing (and
dropping) the one that waited there (`PENDING_FRAMES`), and goes out when the channel drains
to the threshold.
A frame for a channel that is not open is dropped. `data_track_frames_dropped` counts both.

Limits and behaviour:
- aiortc gathers every candidate before `setLocalDescription` returns, so our offers and
  answers carry their candidates and we never trickle local ones; remote trickle candidates
  are added as they come.
- aiortc cannot restart ICE: `CreateOffer(ice_restart=True)` fails (`on_command_failed`), and
  the core turns the resume that needed it into a full reconnect (new peer connections).
- Closing a peer connection is shielded from our cancellation (`close_peer_connection`): aiortc
  may be closing it already, and cancelling our wait would break its own close.
- Only the peer connection the core created last under a target reports its state: one it
  closed (a full reconnect) must not be taken for its successor.
- Delivery reports: a `SendDataPacket` with a sequence sent on `_reliable` is tagged with it
  on the SCTP association (`_sctp_fast.FastSctpTransport.lk_tag_last_message`); when the
  server's cumulative TSN ack covers it, `on_reliable_delivered(sequence)` tells the core,
  which drops those packets from its replay buffer. Only the association of the `_reliable`
  channel in use reports. aiortc's own association (an untested aiortc) cannot tag: nothing
  is reported and the core's replay buffer keeps to its byte bound.
- `host_addresses` restricts the host candidates aioice gathers (the test harness confines
  ICE to one private address; loopback addresses are allowed only if named here).
- Media tracks (transports/_aiortc_media.py): the peer connection bundles every m-line on
  one transport (`bundlePolicy=MAX_BUNDLE`, media findings F3.2); once it is connected, the
  transceivers of descriptions applied while DTLS was still connecting are started
  (`start_late_transceivers`); the transceiver commands
  run on the worker like SDP operations; an offer made for the core's queue is reported
  with its id and the slots' mids; after every answer the receivers' SSRCs are re-registered
  before `on_remote_description` reports it applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
import json
import logging
from collections import deque
from collections.abc import Sequence
from typing import TypeAlias, assert_never

import aioice.ice
import aioice.turn
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.sdp import candidate_from_sdp

from lkproto import commands as cmd
from lkproto.models import Channel, IceServer, PeerState, PeerTarget, SdpType

from ._aiortc_media import AiortcMedia, align_payload_types, refresh_receiver_ssrcs
from ._ice import install as _install_eager_ice
from ._media import MediaRouter
from ._ports import PeerCommand, PeerListener
from ._rtc_config import IcePolicy
from ._sctp import install as _install_ordered_sctp_delivery
from ._turn import ice_transport_policy, settle_turn, use_turn

# This module is imported when the process creates its first peer connection
# (transports/_runtime.py), never with an adapter: these run once, before any association.
_install_ordered_sctp_delivery()  # aiortc stalls a stream whose TSNs are out of SSN order
_install_eager_ice()  # aioice reports a completed check list up to 20 ms late

__all__ = ["PENDING_FRAMES", "AiortcPeer"]

log = logging.getLogger("lkproto.transports")

_LABELS = {c.value: c for c in Channel}
PENDING_FRAMES = 1
"""Data-track frames held while `_data_track` drains; a newer one pushes the oldest out
(rust-sdks `DataChannelSender::QUEUE_CAPACITY`: only the freshest waits)."""
_Queued: TypeAlias = (  # what the worker carries out in order (data goes out at once)
    cmd.CreatePeerConnection
    | cmd.CreateDataChannel
    | cmd.CreateOffer
    | cmd.CreateAnswer
    | cmd.SetRemoteDescription
    | cmd.AddIceCandidate
    | cmd.ClosePeerConnection
    | cmd.AddTransceiver
    | cmd.SetTransceiverDirection
    | cmd.SetSendSource
)
_ALLOWED_HOSTS: contextvars.ContextVar[frozenset[str] | None] = contextvars.ContextVar(
    "lkproto_ice_host_addresses", default=None
)
_original_get_host_addresses = aioice.ice.get_host_addresses


def _restricted_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    found = _original_get_host_addresses(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
    allowed = _ALLOWED_HOSTS.get()
    if allowed is None:
        return found
    return [a for a in sorted(allowed) if a in found or ipaddress.ip_address(a).is_loopback]


# Installed once; it changes nothing unless a peer set `host_addresses` in its own context.
aioice.ice.get_host_addresses = _restricted_host_addresses

# aioice asks for a 256 KiB UDP receive buffer; bursts of SCTP packets overflow it and every
# drop costs a retransmission (measured: ~400-900 drops per 16 MiB stream received). 2 MiB
# (capped by net.core.rmem_max) removed the drops in benchmarks/bench_streams.py.
aioice.turn.UDP_SOCKET_BUFFER_SIZE = max(aioice.turn.UDP_SOCKET_BUFFER_SIZE, 2 * 1024 * 1024)


async def close_peer_connection(pc: RTCPeerConnection) -> None:
    """`pc.close()`, shielded from our cancellation. aiortc may be closing `pc` already (its own
    task, once the remote end closed DTLS), and a second `close()` awaits that close's future:
    cancelling our wait (a session torn down under a deadline) would cancel that shared future,
    and aiortc's task would then fail setting it ("Task exception was never retrieved ...
    InvalidStateError" on the user's stderr, seen when a server deletes the room)."""
    await asyncio.shield(pc.close())


def _rtc_ice_servers(servers: Sequence[IceServer]) -> list[RTCIceServer]:
    out = []
    for server in servers:
        urls = [u for u in server.urls if u.startswith(("stun:", "turn:", "turns:"))]
        if urls:
            out.append(
                RTCIceServer(
                    urls=urls,
                    username=server.username or None,
                    credential=server.credential or None,
                )
            )
    return out


class AiortcPeer:
    """The core's `PeerPort` on aiortc. Create and use it inside one running asyncio loop."""

    def __init__(
        self,
        listener: PeerListener,
        *,
        host_addresses: Sequence[str] | None = None,
        ice_servers: Sequence[IceServer] | None = None,
        media: MediaRouter | None = None,
        ice_policy: IcePolicy | None = None,
    ) -> None:
        self._listener = listener
        self._ice_policy = ice_policy
        self._media = AiortcMedia(media)
        self._host_addresses = None if host_addresses is None else frozenset(host_addresses)
        self._ice_override = None if not ice_servers else tuple(ice_servers)
        self._pcs: dict[PeerTarget, RTCPeerConnection] = {}
        self._send: dict[Channel, RTCDataChannel] = {}
        self._queue: asyncio.Queue[_Queued] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._closed = False
        self._pending: deque[cmd.SendDataTrackFrame] = deque(maxlen=PENDING_FRAMES)
        self.data_track_frames_dropped = 0

    # -- PeerPort -------------------------------------------------------------------------------

    def submit(self, command: PeerCommand) -> None:
        if self._closed:
            return
        if isinstance(command, cmd.SendDataPacket):
            self._send_now(command)
            return
        if isinstance(command, cmd.SendDataTrackFrame):
            self._send_frame(command)
            return
        self._queue.put_nowait(command)
        if self._worker is None:
            context = contextvars.copy_context()
            context.run(_ALLOWED_HOSTS.set, self._host_addresses)
            self._worker = asyncio.get_running_loop().create_task(self._run(), context=context)

    def buffered_amount(self, channel: Channel) -> int:
        dc = self._send.get(channel)
        return 0 if dc is None else dc.bufferedAmount

    def set_low_threshold(self, channel: Channel, threshold: int) -> None:
        dc = self._send.get(channel)
        if dc is not None:
            dc.bufferedAmountLowThreshold = threshold

    async def drain(self, timeout: float) -> bool:
        """Wait, at most `timeout` s, until the peer has acknowledged everything we sent;
        whether it has.

        Used before leaving, so the last packets (a stream trailer, the final publish_data)
        are not cut off by closing the peer connection.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not self._idle():
                    await asyncio.sleep(0.01)
        return self._idle()

    def _idle(self) -> bool:
        if any(dc.bufferedAmount for dc in self._send.values() if dc.readyState == "open"):
            return False
        for pc in self._pcs.values():
            sctp = pc.sctp
            # aiortc keeps data not yet sent, and sent but not yet acknowledged, in these.
            if sctp is not None and any(
                getattr(sctp, queue, None)
                for queue in ("_data_channel_queue", "_outbound_queue", "_sent_queue")
            ):
                return False
        return True

    async def aclose(self) -> None:
        """Close every peer connection and stop the worker. Idempotent."""
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(BaseException):
                await self._worker
        pcs, self._pcs = list(self._pcs.values()), {}
        for pc in pcs:
            with contextlib.suppress(Exception):
                await close_peer_connection(pc)
        await settle_turn()  # TURN allocations are deleted in tasks of aioice's own
        await self._media.aclose()

    # -- carrying out commands ------------------------------------------------------------------

    def _send_now(self, command: cmd.SendDataPacket) -> None:
        dc = self._send.get(command.channel)
        if dc is None or dc.readyState != "open":
            self._listener.on_command_failed(command, f"{command.channel.value} is not open")
            return
        try:
            dc.send(command.data)
        except Exception as exc:  # aiortc raises plain exceptions on a broken channel
            self._listener.on_command_failed(command, str(exc) or type(exc).__name__)
            return
        if command.sequence and command.channel is Channel.RELIABLE:
            tag = getattr(dc.transport, "lk_tag_last_message", None)  # FastSctpTransport's
            if tag is not None:
                tag(command.sequence)

    def _send_frame(self, command: cmd.SendDataTrackFrame) -> None:
        dc = self._send.get(Channel.DATA_TRACK)
        if dc is None or dc.readyState != "open":
            self.data_track_frames_dropped += 1
            return
        if dc.bufferedAmount > dc.bufferedAmountLowThreshold:
            if len(self._pending) == PENDING_FRAMES:
                self.data_track_frames_dropped += 1  # the oldest waiting frame goes
            self._pending.append(command)
            return
        try:
            for packet in command.packets:
                dc.send(packet)
        except Exception:  # a broken channel: it reports its close; the frame is lost
            self.data_track_frames_dropped += 1
            log.debug("a data-track frame could not be sent", exc_info=True)

    def _data_track_drained(self) -> None:
        if self._pending:
            self._send_frame(self._pending.popleft())

    async def _run(self) -> None:
        while True:
            command = await self._queue.get()
            try:
                await self._execute(command)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("peer command %s failed", type(command).__name__, exc_info=True)
                self._listener.on_command_failed(command, str(exc) or type(exc).__name__)

    async def _execute(self, command: _Queued) -> None:
        match command:
            case cmd.CreatePeerConnection():
                self._create_pc(command.target, command.ice_servers)
            case cmd.CreateDataChannel():
                self._create_channel(command)
            case cmd.CreateOffer() | cmd.CreateAnswer():
                pc = self._pcs[command.target]
                if isinstance(command, cmd.CreateOffer) and command.ice_restart:
                    raise NotImplementedError("aiortc cannot restart ICE")
                if isinstance(command, cmd.CreateOffer):
                    description = await pc.createOffer()
                else:
                    description = await pc.createAnswer()
                await pc.setLocalDescription(description)
                local = pc.localDescription
                offer_id = command.offer_id if isinstance(command, cmd.CreateOffer) else 0
                mids = self._media.slot_mids() if offer_id else None
                self._listener.on_local_description(
                    command.target, local.sdp, SdpType(local.type), offer_id, mids
                )
            case cmd.SetRemoteDescription():
                pc = self._pcs[command.target]
                sdp = command.sdp
                if command.sdp_type is SdpType.ANSWER and pc.localDescription is not None:
                    sdp = align_payload_types(pc.localDescription.sdp, sdp)  # receive m-lines
                remote = RTCSessionDescription(sdp=sdp, type=command.sdp_type.value)
                await pc.setRemoteDescription(remote)
                refresh_receiver_ssrcs(pc)  # F8.1: tracks moved onto started receivers
                if command.offer_id:
                    self._listener.on_remote_description(command.target, command.offer_id)
            case cmd.AddTransceiver() | cmd.SetTransceiverDirection() | cmd.SetSendSource():
                self._media.execute(self._pcs[PeerTarget.PUBLISHER], command)
            case cmd.AddIceCandidate():
                await self._add_candidate(command)
            case cmd.ClosePeerConnection():
                if command.target is PeerTarget.PUBLISHER:
                    self._media.reset()
                if command.target in self._pcs:
                    await close_peer_connection(self._pcs.pop(command.target))
            case _:
                assert_never(command)

    def _create_pc(self, target: PeerTarget, servers: Sequence[IceServer]) -> None:
        chosen = self._ice_override if self._ice_override is not None else tuple(servers)
        configuration = RTCConfiguration(
            iceServers=_rtc_ice_servers(chosen),
            bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
            iceTransportPolicy=ice_transport_policy(self._ice_policy),  # TRANSPORT_RELAY?
        )
        use_turn(chosen, self._ice_policy)  # every TURN URL, in order, for this worker's PCs
        pc = RTCPeerConnection(configuration)
        self._pcs[target] = pc

        @pc.on("track")
        def _track(track: MediaStreamTrack) -> None:
            if target is PeerTarget.PUBLISHER and self._pcs.get(target) is pc:
                self._media.on_track(pc, track)
            else:  # the dual-PC subscriber's: nobody reads it, but it must be drained
                self._media.on_track(pc, track, ours=False)

        @pc.on("connectionstatechange")
        def _state() -> None:
            if self._pcs.get(target) is pc:
                if pc.connectionState == "connected":
                    self._media.start_late_transceivers(pc)
                self._listener.on_peer_state(target, PeerState(pc.connectionState))

        @pc.on("datachannel")
        def _adopt(dc: RTCDataChannel) -> None:
            channel = _LABELS.get(dc.label)
            if channel is not None:  # other labels are not ours to read
                self._read(dc, channel)

    def _create_channel(self, command: cmd.CreateDataChannel) -> None:
        pc = self._pcs[command.target]
        dc = pc.createDataChannel(
            command.channel.value,
            ordered=command.ordered,
            maxRetransmits=command.max_retransmits,
        )
        self._send[command.channel] = dc
        self._read(dc, command.channel)
        channel = command.channel
        if channel is Channel.RELIABLE and hasattr(dc.transport, "lk_on_delivered"):

            def _delivered(sequence: int) -> None:
                if not self._closed and self._send.get(channel) is dc:
                    self._listener.on_reliable_delivered(sequence)

            dc.transport.lk_on_delivered = _delivered

        @dc.on("open")
        def _open() -> None:
            sctp = pc.sctp
            limit = getattr(sctp, "_remote_max_message_size", None) if sctp else None
            self._listener.on_channel_open(channel, limit if isinstance(limit, int) else None)

        @dc.on("close")
        def _close() -> None:
            if self._send.get(channel) is dc:
                self._listener.on_channel_closed(channel)

        @dc.on("bufferedamountlow")
        def _low() -> None:
            if channel is Channel.DATA_TRACK:
                self._data_track_drained()
            self._listener.on_writable(channel)

    def _read(self, dc: RTCDataChannel, channel: Channel) -> None:
        listener = self._listener

        @dc.on("message")
        def _message(message: bytes | str) -> None:
            if isinstance(message, bytes):
                listener.on_data(channel, message)
            # Text messages are not part of the protocol (A.3); the core never sees them.

        # FastSctpTransport hands binary messages straight to a reader (no event emitter
        # per message); with aiortc's own transport they come through "message" above.
        # `on_data` is looked up per message, as above: a listener's method may be replaced
        # after the channel opened (the tests' raw-data taps, harness/taps.py, do).
        readers = getattr(dc.transport, "lk_readers", None)
        if readers is not None:

            def _read_binary(message: bytes) -> None:
                listener.on_data(channel, message)

            readers[dc] = _read_binary

    async def _add_candidate(self, command: cmd.AddIceCandidate) -> None:
        init = json.loads(command.candidate_init)
        text = str(init.get("candidate") or "")
        pc = self._pcs.get(command.target)
        if pc is None:
            return
        if not text:
            await pc.addIceCandidate(None)  # end of candidates
            return
        candidate = candidate_from_sdp(text.removeprefix("candidate:"))
        candidate.sdpMid = init.get("sdpMid")
        candidate.sdpMLineIndex = init.get("sdpMLineIndex")
        await pc.addIceCandidate(candidate)
