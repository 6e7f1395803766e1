"""Media tracks on aiortc: transceiver slots, paced send tracks, receive readers, and the
receivers' SSRC refresh. Runs on the asyncio loop that owns the peer connection.

Theory of operation (media findings F1-F8, read against aiortc 1.16)
- Slots. The core numbers transceivers (`lkproto.tracks` slots); `AddTransceiver(slot)`
  adds one with `pc.addTransceiver` (never `pc.addTrack`, which would turn one of our
  receive slots into sendrecv, F8.9) and `slot_mids()` reports each slot's mid with every
  offer. The peer connection uses `bundlePolicy=MAX_BUNDLE` (F3.2, set by the caller).
- Send side. A send slot has a `SlotClock`: one pts timeline, in 48 kHz stereo samples, for
  every track the slot ever carries, so pts never go backwards when a republish reuses the
  slot (F4.6, F8.4: the SFU drops "pre-start" timestamps, and `pts=None` kills the sender).
  Its `SendTrack`'s id is the publication's cid (the server matches the RTP to the
  publication by msid track id == cid, F1.3). `recv()` sleeps to an absolute 20 ms schedule
  and re-anchors when it fell more than 100 ms behind instead of bursting (F8.6); after an
  idle gap (a new source on the slot, a stalled loop) the pts jump by the wall time that
  passed. It pulls 20 ms from the source's `PcmQueue` (silence when short or muted, F4.1),
  converts it to 48 kHz stereo (what aiortc's Opus encoder wants; its own resampler
  refuses a format change, so every frame of a slot has one format) and never raises
  anything but `MediaStreamError`: a failure becomes silence and a logged warning.
- Video (issue 23). A video send slot has a `VideoClock`: pts in 90 kHz from the capture
  time of each frame (monotonic, the same origin for every track the slot carries, and
  always above the last one, F4.6/F8.4). Its `VideoSendTrack` (id = cid) waits for the next
  frame of its `VideoSource`'s queue; frames captured while muted, or faster than the
  publication's `max_framerate`, are dropped (nothing is encoded for them). A video slot's
  codec ("vp8"/"h264") is applied with `setCodecPreferences` (that codec and its RTX);
  "" keeps aiortc's order (VP8 first, F6.1). Decoded video frames (yuv420p) go to the
  `VideoStream`s of the slot's track as I420 `VideoFrame`s; each stream converts them when
  its reader takes them.
- Receive side. Every track aiortc starts (its "track" event, once per transceiver, F8.2)
  gets a reader task that drains it for as long as it lives, even with nobody listening:
  aiortc's queue is unbounded (F8.3). Each frame goes to the readers of whatever remote
  track the slot carries NOW (`MediaRouter.consumers(slot)`, fed from the core's
  `TrackSubscribed`, F4.9), resampled per `AudioStream` to its rate and channels; with no
  reader it is dropped. Frames of a transceiver that is no slot of ours (the dual-PC
  subscriber connection) are drained and dropped.
- Late transceivers (found with video, issue 23). aiortc starts a transceiver's sender and
  receiver in `RTCPeerConnection.__connect`, which each `setRemoteDescription` schedules: it
  waits for ICE, starts DTLS if it is "new", then starts the media only if DTLS is
  "connected". A second description applied while the first one's DTLS handshake runs
  ("connecting": a publish right after a full reconnect's join) skips its new transceivers,
  and nothing starts them later: the sender never sends. So when the peer connection
  becomes "connected", `start_late_transceivers` runs `__connect` once more (starting a
  sender or receiver twice does nothing in aiortc 1.16). Private, like the SSRC refresh.
- Video receive latency (issue 23). aiortc's video `JitterBuffer` hands a frame to the
  decoder only when the first packet of the NEXT frame arrives, which delays every frame by
  one frame interval (67 ms at 15 fps; measured in benchmarks/RESULTS.md). Each video
  receiver gets a `MarkerJitterBuffer` instead: the same buffer, which also releases a frame
  as soon as its last packet (the RTP marker bit, RFC 7741 for VP8, RFC 6184 for H.264) is
  in and every packet of it from the buffer's origin is there. Private, like the SSRC
  refresh: without the attribute, aiortc's own buffer stays (a WARNING says so).
- Payload types (found with video, issue 23). A receive m-line's payload types are the
  ones WE offered (RFC 3264 section 5.1: the offer lists what the offerer receives), but
  livekit-server 1.13.5 sometimes answers a receive m-line with its own numbering (VP8 96,
  rtx 97, where we offered VP8 97, rtx 98) and still sends what we offered (VP8 as 97).
  aiortc receives by the answer's numbering, so it took VP8 for RTX and decoded nothing.
  `align_payload_types` rewrites, in each answer section whose offered direction is
  recvonly, the answer's payload types to the offer's for the same codec (name, clock rate,
  channels, H.264 profile and packetization mode; RTX by its `apt`), dropping codecs we did
  not offer, before the answer is applied.
- SSRC refresh (F8.1). aiortc registers a receiver's SSRCs with its RTP router once, when
  the receiver starts, and otherwise routes an unknown SSRC only if a single receiver has
  its payload type, so a track the server later moves onto an already-started transceiver
  is dropped. After every remote description, `refresh_receiver_ssrcs` maps each `a=ssrc`
  (and each RTX FID pair) of a started transceiver's m-line to its receiver. This touches
  aiortc private attributes (`RTCDtlsTransport._rtp_router`, `RtpRouter.ssrc_table`,
  `RTCRtpReceiver.__rtx_ssrc`): pyproject pins `aiortc==1.16.*`, and if they are missing
  the refresh is skipped with a WARNING (moved tracks then stay silent).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
from collections.abc import Mapping

import av
from aiortc import (
    MediaStreamTrack,
    RTCPeerConnection,
    RTCRtpCodecParameters,
    RTCRtpSender,
    RTCRtpTransceiver,
)
from aiortc import __version__ as AIORTC_VERSION
from aiortc import sdp as aiortc_sdp
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket

from lkproto import commands as cmd
from lkproto.tracks import TrackKind

from ._audio import FRAME_MS, AudioFrame, FrameQueue, PcmQueue, StreamFormat
from ._media import Consumer, MediaRouter
from ._video import (
    CapturedFrame,
    VideoBufferType,
    VideoFormat,
    VideoFrameEvent,
    VideoQueue,
    from_av,
)

__all__ = [
    "AiortcMedia",
    "MarkerJitterBuffer",
    "SendTrack",
    "SlotClock",
    "VideoClock",
    "VideoSendTrack",
    "align_payload_types",
    "deliver_video",
    "fan_out",
    "refresh_receiver_ssrcs",
    "use_marker_jitter_buffer",
]

log = logging.getLogger("lkproto.transports")

RATE = 48_000  #: every send slot's format: what aiortc's Opus encoder wants
CHANNELS = 2
FRAME_SAMPLES = RATE * FRAME_MS // 1000
FRAME_BYTES = FRAME_SAMPLES * CHANNELS * 2
REANCHOR = 0.1  #: seconds behind schedule after which the schedule restarts from now
TESTED_AIORTC = "1.16."
_LAYOUTS = {1: "mono", 2: "stereo"}


# -- the send side ---------------------------------------------------------------------------


class SlotClock:
    """One send slot's timeline: the next pts (48 kHz samples) and the absolute schedule."""

    def __init__(self) -> None:
        self.pts = 0
        self.deadline: float | None = None  # loop time of the next frame
        self.last: float | None = None  # loop time the last frame was made


def to_stereo(mono: bytes) -> bytes:
    """Interleaved int16 mono to stereo, each sample copied to both channels (a resampler's
    upmix would lower the level by 3 dB)."""
    out = bytearray(len(mono) * 2)
    for offset in (0, 2):
        out[offset::4] = mono[0::2]
        out[offset + 1 :: 4] = mono[1::2]
    return bytes(out)


class _Converter:
    """Source PCM (any rate, mono or stereo) to 48 kHz stereo, 20 ms at a time."""

    def __init__(self, rate: int, channels: int) -> None:
        self.rate, self.channels = rate, channels
        layout = _LAYOUTS[channels]
        self._resampler = av.AudioResampler(format="s16", layout=layout, rate=RATE)
        self._pending = bytearray()  # 48 kHz, the source's channels

    def convert(self, pcm: bytes) -> bytes | None:
        per = 2 * self.channels
        if self.rate == RATE:
            self._pending += pcm
        else:
            frame = av.AudioFrame(
                format="s16", layout=_LAYOUTS[self.channels], samples=len(pcm) // per
            )
            frame.planes[0].update(pcm)
            frame.sample_rate = self.rate
            for out in self._resampler.resample(frame):
                self._pending += bytes(out.planes[0])[: out.samples * per]
        size = FRAME_SAMPLES * per
        if len(self._pending) < size:
            return None  # the resampler's delay, at the start: silence this once
        data = bytes(self._pending[:size])
        del self._pending[:size]
        return data if self.channels == CHANNELS else to_stereo(data)


class SendTrack(MediaStreamTrack):
    """The aiortc track of one publication on one slot (see the module docstring)."""

    kind = "audio"

    def __init__(self, cid: str, router: MediaRouter, clock: SlotClock) -> None:
        super().__init__()
        self._cid = cid
        self._router = router
        self._clock = clock
        self._converter: _Converter | None = None
        self.silent_frames = 0  # frames sent as silence: underrun, muted, or a failure
        self.reanchors = 0

    @property
    def id(self) -> str:
        return self._cid  # the msid track id the server matches to the publication (F1.3)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        try:
            await self._pace()
            pcm = self._pull()
        except asyncio.CancelledError:
            raise
        except Exception:  # never end the sender (F8.4): send silence, say why
            log.warning("audio send track %s failed; sending silence", self._cid, exc_info=True)
            pcm = None
        if pcm is None:
            self.silent_frames += 1
            pcm = bytes(FRAME_BYTES)
        return self._frame(pcm)

    async def _pace(self) -> None:
        clock = self._clock
        loop = asyncio.get_running_loop()
        now = loop.time()
        if clock.deadline is None or now - clock.deadline > REANCHOR:
            if clock.deadline is not None:
                self.reanchors += 1
            if clock.last is not None:  # an idle gap: the timeline follows the wall clock
                gap = max(0.0, now - clock.last - FRAME_MS / 1000)
                clock.pts += round(gap * RATE)
            clock.deadline = now
        delay = clock.deadline - now
        if delay > 0:
            await asyncio.sleep(delay)
        clock.deadline += FRAME_MS / 1000

    def _pull(self) -> bytes | None:
        source = self._router.source(self._cid)
        if source is None:
            return None
        queue = source.queue
        if not isinstance(queue, PcmQueue):
            return None  # (a video source: never on an audio slot)
        pcm = queue.pop_frame()
        if pcm is None or source.muted:
            return None  # short (silence), or muted (the queue still drains in real time)
        if (queue.sample_rate, queue.num_channels) == (RATE, CHANNELS):
            return pcm
        if self._converter is None:
            self._converter = _Converter(queue.sample_rate, queue.num_channels)
        return self._converter.convert(pcm)

    def _frame(self, pcm: bytes) -> av.AudioFrame:
        clock = self._clock
        frame = av.AudioFrame(format="s16", layout="stereo", samples=FRAME_SAMPLES)
        frame.planes[0].update(pcm)
        frame.sample_rate = RATE
        frame.time_base = fractions.Fraction(1, RATE)
        frame.pts = clock.pts
        clock.pts += FRAME_SAMPLES
        clock.last = asyncio.get_running_loop().time()
        return frame


class VideoClock:
    """One video send slot's timeline: pts in 90 kHz from a fixed monotonic origin."""

    RATE = 90_000

    def __init__(self) -> None:
        self.origin: float | None = None  # time.monotonic() of pts 0
        self.pts = -1  # the last pts sent

    def next_pts(self, captured: float) -> int:
        if self.origin is None:
            self.origin = captured
        self.pts = max(self.pts + 1, round((captured - self.origin) * self.RATE))
        return self.pts


class VideoSendTrack(MediaStreamTrack):
    """The aiortc track of one video publication on one slot (see the module docstring)."""

    kind = "video"
    IDLE = 0.1  #: seconds between looks while the source is gone or closed

    def __init__(self, cid: str, router: MediaRouter, clock: VideoClock) -> None:
        super().__init__()
        self._cid = cid
        self._router = router
        self._clock = clock
        self._last: float | None = None  # capture time of the last frame sent
        self.sent = 0
        self.skipped = 0  # muted, or over the frame-rate cap

    @property
    def id(self) -> str:
        return self._cid  # the msid track id the server matches to the publication (F1.3)

    async def recv(self) -> av.VideoFrame:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            try:
                frame = await self._next()
            except asyncio.CancelledError:
                raise
            except Exception:  # never end the sender (F8.4): wait for the next frame
                log.warning("video send track %s failed; going on", self._cid, exc_info=True)
                await asyncio.sleep(self.IDLE)
                continue
            if frame is not None:
                return frame

    async def _next(self) -> av.VideoFrame | None:
        source = self._router.source(self._cid)
        queue = None if source is None else source.queue
        if source is None or not isinstance(queue, VideoQueue) or queue.closed:
            await asyncio.sleep(self.IDLE)
            return None
        item: CapturedFrame | None = await queue.get()
        if item is None:
            return None
        cap = source.max_framerate
        too_soon = cap > 0 and self._last is not None and item.captured - self._last < 0.9 / cap
        if source.muted or too_soon:
            self.skipped += 1
            return None
        self._last = item.captured
        frame = item.frame
        frame.pts = self._clock.next_pts(item.captured)
        frame.time_base = fractions.Fraction(1, VideoClock.RATE)
        self.sent += 1
        return frame


class MarkerJitterBuffer(JitterBuffer):
    """aiortc's video jitter buffer, releasing a frame at its marker (see the module)."""

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        pli_flag, frame = super().add(packet)
        if frame is None:  # (a retransmission may complete a frame whose marker came first)
            frame = self._remove_marked()
        return pli_flag, frame

    def _remove_marked(self) -> JitterFrame | None:
        """The frame at the origin, if all its packets up to a marked one are in."""
        if self._origin is None:
            return None
        packets: list[RtpPacket] = []
        for count in range(self.capacity):
            packet = self._packets[(self._origin + count) % self.capacity]
            if packet is None or (packets and packet.timestamp != packets[0].timestamp):
                return None
            packets.append(packet)
            if packet.marker:
                self.remove(count + 1)
                data = b"".join(p._data for p in packets)  # type: ignore[attr-defined]
                return JitterFrame(data=data, timestamp=packets[0].timestamp)
        return None


def use_marker_jitter_buffer(transceiver: RTCRtpTransceiver) -> bool:
    """Give a video transceiver's receiver a `MarkerJitterBuffer` (before it receives)."""
    receiver = transceiver.receiver
    current = getattr(receiver, "_RTCRtpReceiver__jitter_buffer", None)
    if not isinstance(current, JitterBuffer):
        _warn_once(
            "jitter",
            "aiortc %s: RTCRtpReceiver's jitter buffer is not where lkproto looks (tested "
            "with aiortc %sx); received video is delayed by one frame",
            AIORTC_VERSION,
            TESTED_AIORTC,
        )
        return False
    buffer = MarkerJitterBuffer(capacity=current.capacity, is_video=True)
    setattr(receiver, "_RTCRtpReceiver__jitter_buffer", buffer)  # noqa: B010 - name-mangled
    return True


def _prefer(transceiver: RTCRtpTransceiver, codec: str) -> None:
    """Offer only `codec` (and RTX) on a video transceiver."""
    wanted = f"video/{codec}".lower()
    codecs = RTCRtpSender.getCapabilities("video").codecs
    chosen = [c for c in codecs if c.mimeType.lower() == wanted]
    chosen += [c for c in codecs if c.mimeType.lower() == "video/rtx"]
    transceiver.setCodecPreferences(chosen)


# -- the receive side --------------------------------------------------------------------------


class _StreamConverter:
    """Decoded frames (s16 stereo 48 kHz from aiortc) to one stream's format and size."""

    def __init__(self, rate: int, channels: int, frame_ms: int | None) -> None:
        self.rate, self.channels = rate, channels
        self._resampler = av.AudioResampler(format="s16", layout=_LAYOUTS[channels], rate=rate)
        self._chunk = None if frame_ms is None else rate * frame_ms // 1000 * channels * 2
        self._pending = bytearray()

    def convert(self, frame: av.AudioFrame) -> list[AudioFrame]:
        out: list[AudioFrame] = []
        per = self.channels * 2
        for piece in self._resampler.resample(frame):
            data = bytes(piece.planes[0])[: piece.samples * per]
            if self._chunk is None:
                out.append(AudioFrame(data, self.rate, self.channels, piece.samples))
                continue
            self._pending += data
            while len(self._pending) >= self._chunk:
                chunk = bytes(self._pending[: self._chunk])
                del self._pending[: self._chunk]
                out.append(AudioFrame(chunk, self.rate, self.channels, self._chunk // per))
        return out


def deliver(consumers: list[Consumer], frame: av.AudioFrame) -> None:
    """Hand a decoded frame to each audio reader, in its own format."""
    for consumer in consumers:
        fmt, queue = consumer.fmt, consumer.queue
        if not isinstance(fmt, StreamFormat) or not isinstance(queue, FrameQueue):
            continue  # a video reader of the same participant and source key
        converter = consumer.converter
        if not isinstance(converter, _StreamConverter):
            converter = consumer.converter = _StreamConverter(
                fmt.sample_rate, fmt.num_channels, fmt.frame_size_ms
            )
        for out in converter.convert(frame):
            queue.put(out)


def deliver_video(consumers: list[Consumer], frame: av.VideoFrame) -> None:
    """Hand a decoded picture to each video reader, as I420 (each converts it when read)."""
    if not _video_queues(consumers):
        return
    stamp = 0
    if frame.pts is not None and frame.time_base is not None:
        stamp = int(frame.pts * frame.time_base * 1_000_000)
    fan_out(consumers, VideoFrameEvent(from_av(frame, VideoBufferType.I420), stamp))


def _video_queues(consumers: list[Consumer]) -> list[VideoQueue[VideoFrameEvent]]:
    return [
        c.queue
        for c in consumers
        if isinstance(c.fmt, VideoFormat) and isinstance(c.queue, VideoQueue)
    ]


def fan_out(consumers: list[Consumer], event: VideoFrameEvent) -> None:
    """Queue `event` for each video reader, each with its own copy of the picture."""
    for n, queue in enumerate(_video_queues(consumers)):
        if n:
            event = VideoFrameEvent(event.frame.convert(event.frame.type), event.timestamp_us)
        queue.put(event)


# -- payload types of receive m-lines ------------------------------------------------------------


def _codec_key(codec: RTCRtpCodecParameters) -> tuple[object, ...]:
    params = codec.parameters
    extra: tuple[object, ...] = ()
    if codec.mimeType.lower() == "video/h264":
        profile = str(params.get("profile-level-id", "")).lower()[:2]
        extra = (profile, str(params.get("packetization-mode", "0")))
    return (codec.mimeType.lower(), codec.clockRate, codec.channels or 1, *extra)


def _pt_map(
    offered: list[RTCRtpCodecParameters], answered: list[RTCRtpCodecParameters]
) -> dict[int, int]:
    """answer payload type -> offer payload type, for the codecs both list."""
    wanted: dict[tuple[object, ...], int] = {}
    rtx_by_apt: dict[int, int] = {}
    for codec in offered:
        if codec.payloadType is None:
            continue
        if codec.mimeType.lower().endswith("/rtx"):
            rtx_by_apt[_apt(codec)] = codec.payloadType
        else:
            wanted.setdefault(_codec_key(codec), codec.payloadType)
    mapping: dict[int, int] = {}
    for codec in answered:
        pt, key = codec.payloadType, _codec_key(codec)
        rtx = codec.mimeType.lower().endswith("/rtx")
        if pt is not None and not rtx and key in wanted:
            mapping[pt] = wanted[key]
    for codec in answered:
        pt = codec.payloadType
        if pt is not None and codec.mimeType.lower().endswith("/rtx"):
            apt = mapping.get(_apt(codec))
            if apt is not None and apt in rtx_by_apt:
                mapping[pt] = rtx_by_apt[apt]
    return mapping


def _apt(codec: RTCRtpCodecParameters) -> int:
    value = codec.parameters.get("apt")
    return value if isinstance(value, int) else int(str(value)) if str(value).isdigit() else -1


def _rewrite_section(lines: list[str], mapping: dict[int, int]) -> list[str]:
    out = []
    for line in lines:
        if line.startswith("m="):
            parts = line.split(" ")
            kept = [str(mapping[int(p)]) for p in parts[3:] if p.isdigit() and int(p) in mapping]
            out.append(" ".join(parts[:3] + kept))
            continue
        for prefix in ("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"):
            if line.startswith(prefix):
                head, _, rest = line[len(prefix) :].partition(" ")
                if not head.isdigit() or int(head) not in mapping:
                    line = ""  # a codec we did not offer
                    break
                if prefix == "a=fmtp:" and "apt=" in rest:
                    params = []
                    for param in rest.split(";"):
                        key, _, value = param.partition("=")
                        if key.strip() == "apt" and value.isdigit() and int(value) in mapping:
                            param = f"{key}={mapping[int(value)]}"
                        params.append(param)
                    rest = ";".join(params)
                line = (
                    f"{prefix}{mapping[int(head)]} {rest}"
                    if rest
                    else f"{prefix}{mapping[int(head)]}"
                )
                break
        if line:
            out.append(line)
    return out


def align_payload_types(offer: str, answer: str) -> str:
    """`answer` with each receive m-line's payload types renumbered as in `offer` (see the
    module docstring); unchanged when nothing differs or the descriptions do not parse."""
    try:
        offered = aiortc_sdp.SessionDescription.parse(offer).media
        answered = aiortc_sdp.SessionDescription.parse(answer).media
    except Exception:  # leave it to setRemoteDescription to refuse
        return answer
    if len(offered) != len(answered):
        return answer
    eol = "\r\n" if "\r\n" in answer else "\n"
    lines = answer.split(eol)
    starts = [i for i, line in enumerate(lines) if line.startswith("m=")]
    if len(starts) != len(answered):
        return answer
    bounds = list(zip(starts, [*starts[1:], len(lines)], strict=True))
    changed = False
    out = lines[: starts[0]] if starts else lines
    for (start, end), mine, theirs in zip(bounds, offered, answered, strict=True):
        section = lines[start:end]
        if mine.direction == "recvonly" and mine.kind in ("audio", "video"):
            mapping = _pt_map(mine.rtp.codecs, theirs.rtp.codecs)
            if mapping and any(k != v for k, v in mapping.items()):
                section = _rewrite_section(section, mapping)
                changed = True
        out += section
    return eol.join(out) if changed else answer


# -- the SSRC refresh (F8.1) --------------------------------------------------------------------

_warned: set[str] = set()


def _warn_once(key: str, message: str, *args: object) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args)


def refresh_receiver_ssrcs(pc: RTCPeerConnection) -> int:
    """Map every `a=ssrc` of each started transceiver's m-line in the remote description
    to its receiver (primary and RTX); returns how many entries were added."""
    remote = pc.remoteDescription
    if remote is None:
        return 0
    parsed = aiortc_sdp.SessionDescription.parse(remote.sdp)
    added = 0
    for transceiver in pc.getTransceivers():
        if transceiver.mid is None:
            continue
        media = next((m for m in parsed.media if m.rtp.muxId == transceiver.mid), None)
        if media is None or not media.ssrc:
            continue
        receiver = transceiver.receiver
        router = getattr(receiver.transport, "_rtp_router", None)
        table = getattr(router, "ssrc_table", None)
        started = getattr(router, "receivers", None)
        rtx = getattr(receiver, "_RTCRtpReceiver__rtx_ssrc", None)
        if not isinstance(table, dict) or not isinstance(started, set) or not isinstance(rtx, dict):
            _warn_once(
                "internals",
                "aiortc %s: its receivers' SSRC tables are not where lkproto looks "
                "(tested with aiortc %sx); a remote track the server moves onto a reused "
                "transceiver will be silent",
                AIORTC_VERSION,
                TESTED_AIORTC,
            )
            return added
        if receiver not in started:
            continue  # not started yet: starting registers what the description says
        for ssrc in media.ssrc:
            if table.get(ssrc.ssrc) is not receiver:
                table[ssrc.ssrc] = receiver
                added += 1
        for group in media.ssrc_group:
            if group.semantic == "FID" and len(group.items) == 2:
                rtx[int(group.items[1])] = int(group.items[0])
    return added


# -- the slots of one peer connection -----------------------------------------------------------


class AiortcMedia:
    """The media side of an `AiortcPeer`: its slots, send tracks and readers."""

    def __init__(self, router: MediaRouter | None) -> None:
        if not AIORTC_VERSION.startswith(TESTED_AIORTC):
            _warn_once(
                "version",
                "aiortc %s is not the version lkproto's media was tested with (%sx)",
                AIORTC_VERSION,
                TESTED_AIORTC,
            )
        self.router = router or MediaRouter(1)
        self._slots: dict[int, RTCRtpTransceiver] = {}
        self._clocks: dict[int, SlotClock] = {}
        self._video_clocks: dict[int, VideoClock] = {}
        self._kinds: dict[int, TrackKind] = {}
        self._readers: set[asyncio.Task[None]] = set()

    def slot_mids(self) -> Mapping[int, str]:
        return {slot: t.mid for slot, t in self._slots.items() if t.mid is not None}

    def execute(
        self,
        pc: RTCPeerConnection,
        command: cmd.AddTransceiver | cmd.SetTransceiverDirection | cmd.SetSendSource,
    ) -> None:
        match command:
            case cmd.AddTransceiver():
                self._kinds[command.slot] = command.kind
                track = self._track(command.slot, command.source_cid)
                kind = "audio" if command.kind is TrackKind.AUDIO else "video"
                transceiver = pc.addTransceiver(track or kind, direction=command.direction.value)
                if command.kind is TrackKind.VIDEO:
                    use_marker_jitter_buffer(transceiver)
                    if command.codec:
                        _prefer(transceiver, command.codec)
                self._slots[command.slot] = transceiver
            case cmd.SetTransceiverDirection():
                self._slots[command.slot].direction = command.direction.value
            case cmd.SetSendSource():
                track = self._track(command.slot, command.source_cid)
                self._slots[command.slot].sender.replaceTrack(track)

    def _track(self, slot: int, cid: str | None) -> SendTrack | VideoSendTrack | None:
        if cid is None:
            return None
        if self._kinds.get(slot) is TrackKind.VIDEO:
            video = self._video_clocks.setdefault(slot, VideoClock())
            return VideoSendTrack(cid, self.router, video)
        clock = self._clocks.setdefault(slot, SlotClock())
        return SendTrack(cid, self.router, clock)

    def start_late_transceivers(self, pc: RTCPeerConnection) -> None:
        """The peer connection is connected: start what a description applied while DTLS was
        connecting left unstarted (see the module docstring)."""
        connect = getattr(pc, "_RTCPeerConnection__connect", None)
        if connect is None:
            _warn_once(
                "connect",
                "aiortc %s: RTCPeerConnection.__connect is not where lkproto looks (tested "
                "with aiortc %sx); a track negotiated while the connection was being "
                "established may not start",
                AIORTC_VERSION,
                TESTED_AIORTC,
            )
            return
        task = asyncio.get_running_loop().create_task(connect())
        self._readers.add(task)
        task.add_done_callback(self._started_late)

    def _started_late(self, task: asyncio.Task[None]) -> None:
        self._readers.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("starting late transceivers failed", exc_info=task.exception())

    def on_track(
        self, pc: RTCPeerConnection, track: MediaStreamTrack, *, ours: bool = True
    ) -> None:
        """aiortc started a receiver: drain it for as long as it lives."""
        slot = None
        if ours:
            slot = next((s for s, t in self._slots.items() if t.receiver.track is track), None)
        task = asyncio.get_running_loop().create_task(self._read(slot, track))
        self._readers.add(task)
        task.add_done_callback(self._readers.discard)

    async def _read(self, slot: int | None, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if slot is None:
                    continue  # not ours to read: drained, dropped
                try:
                    if isinstance(frame, av.AudioFrame):
                        deliver(self.router.consumers(slot), frame)
                    elif isinstance(frame, av.VideoFrame):
                        deliver_video(self.router.consumers(slot), frame)
                except Exception:  # a bad frame must not stop the drain
                    log.warning("a %s frame could not be delivered", track.kind, exc_info=True)

    def reset(self) -> None:
        """The peer connection closed: its slots are gone (its tracks end by themselves)."""
        self._slots.clear()
        self._clocks.clear()
        self._video_clocks.clear()
        self._kinds.clear()

    async def aclose(self) -> None:
        self.reset()
        for task in list(self._readers):
            task.cancel()
        for task in list(self._readers):
            with contextlib.suppress(BaseException):
                await task
