"""A Replay-style roleplay agent, built only on lkproto's public API.

It joins a room as an agent (participant kind "agent", identity
``{display_name}::{roleplay_id}::{timestamp}``, name ``display_name``), keeps a transcript of
the conversation and answers two RPC methods, with the names and JSON shapes of Replay's
published agent RPC interface:

- ``get_agent_transcript`` (empty payload) returns
  ``{"snippets": [{"speakerName", "text", "createdAt", "isUser"}, ...], "createdAt"}``
  (times in Unix milliseconds; ``createdAt`` at the top is when the conversation started,
  i.e. when the agent joined). A failure returns ``{"error": "..."}``.
- ``end_room`` (payload ``""`` or ``{"reason": "..."}``) returns
  ``{"success": true, "message": "End room request acknowledged"}`` at once; then, in the
  background, it logs the reason, stops the room's active egresses and deletes the room
  through the LiveKit server API, which disconnects everyone with reason ROOM_DELETED. A
  malformed payload returns ``{"success": false, "error": "..."}`` and ends nothing.

What goes into the transcript, in the order the agent hears it:
- chat: text streams on topic ``lk.chat`` (what ``send_text(topic="lk.chat")`` and LiveKit's
  chat components send);
- transcriptions: text streams on ``lk.transcription`` whose ``lk.transcription_final`` is
  "true" (in the header, or in the trailer as livekit-agents sends it), once per
  ``lk.segment_id``; interim segments are ignored. Legacy ``Transcription`` packets
  ("transcription_received", which the server forwards only from agents) count the same way,
  final segments only, once per segment id. A segment that a transcriber publishes both ways
  (livekit-agents does) is kept once: a final from one format is dropped when the other
  format brought the same speaker and text within the last 5 seconds;
- what the agent says itself: it opens the conversation by greeting the first user who is in
  the room (a roleplay is one user and one agent; later joiners, such as a backend fetching
  the transcript, are not greeted), and answers each user turn (chat or final
  transcription) with a deterministic reply (``greeting()``/``reply()``; override them). It
  says things the way a LiveKit agent does: a text stream on ``lk.transcription`` sent with
  its own identity and the attributes ``lk.segment_id`` and ``lk.transcription_final: true``,
  so LiveKit's agent UIs and any ``register_text_stream_handler("lk.transcription")`` show it.

``isUser`` is false for the agent itself and for any other participant of kind agent, true
for everyone else. ``speakerName`` is the participant's name, or its identity when it has none.

Run it (``--help`` lists everything; LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET are
read from the environment when the options are not given)::

    python examples/replay_agent/agent.py --url ws://127.0.0.1:7880 --api-key KEY \\
        --api-secret SECRET --room my-room --display-name "Bobby the Buyer" --roleplay-id rp-42
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio
import anyio.abc

from lkproto import ParticipantKind
from lkproto.tokens import VideoGrants, mint_token
from lkproto.transports.anyio import (
    DisconnectReason,
    Participant,
    RemoteParticipant,
    Room,
    RoomOptions,
    RpcInvocationData,
    RtcConfiguration,
    StreamError,
    TextStreamReader,
    TranscriptionSegment,
)
from lkproto.transports.api import EgressInfo, LiveKitAPI, TransportError, TwirpError

__all__ = [
    "ACKNOWLEDGED",
    "Agent",
    "Snippet",
    "Transcript",
    "end_room",
    "main",
    "parse_end_room_payload",
]

log = logging.getLogger("replay_agent")

TOPIC_CHAT = "lk.chat"
TOPIC_TRANSCRIPTION = "lk.transcription"
ATTRIBUTE_SEGMENT_ID = "lk.segment_id"
ATTRIBUTE_FINAL = "lk.transcription_final"

ACKNOWLEDGED = {"success": True, "message": "End room request acknowledged"}
_DUPLICATE_WINDOW_MS = 5000
_PAYLOAD_HINT = 'send "" or {"reason": "..."}'


def now_ms() -> int:
    return int(time.time() * 1000)


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# -- the transcript (pure: no I/O, time passed in) ---------------------------------------------


@dataclass(frozen=True)
class Snippet:
    speaker_name: str
    text: str
    created_at: int  # Unix ms when the finished utterance was added
    is_user: bool

    def to_json(self) -> dict[str, object]:
        return {
            "speakerName": self.speaker_name,
            "text": self.text,
            "createdAt": self.created_at,
            "isUser": self.is_user,
        }


@dataclass(frozen=True)
class _Heard:
    source: str
    identity: str
    text: str
    at: int


class Transcript:
    """The conversation so far, in the order utterances were completed.

    `add` drops empty text, a transcription segment it already has (per source, speaker and
    segment id), and the copy of a segment that arrives through the other transcription
    format (same speaker and text within 5 s). `createdAt` values never decrease, even if
    the wall clock steps back.
    """

    SOURCES = ("chat", "stream", "legacy", "agent")

    def __init__(self, created_at: int) -> None:
        self.created_at = created_at
        self.snippets: list[Snippet] = []
        self._segments: set[tuple[str, str, str]] = set()
        self._recent: deque[_Heard] = deque(maxlen=256)

    def add(
        self,
        *,
        speaker_identity: str,
        speaker_name: str,
        text: str,
        is_user: bool,
        now: int,
        source: str,
        segment_id: str = "",
    ) -> Snippet | None:
        if source not in self.SOURCES:
            raise ValueError(f"unknown transcript source {source!r}")
        text = text.strip()
        if not text:
            return None
        if segment_id:
            key = (source, speaker_identity, segment_id)
            if key in self._segments:
                return None
            self._segments.add(key)
        if source in ("stream", "legacy"):
            for heard in self._recent:
                if (
                    heard.source != source
                    and heard.identity == speaker_identity
                    and heard.text == text
                    and now - heard.at <= _DUPLICATE_WINDOW_MS
                ):
                    self._recent.remove(heard)  # each copy cancels one original only
                    return None
            self._recent.append(_Heard(source, speaker_identity, text, now))
        created = max([now, *(s.created_at for s in self.snippets[-1:])])
        snippet = Snippet(speaker_name, text, created, is_user)
        self.snippets.append(snippet)
        return snippet

    def to_json(self) -> dict[str, object]:
        return {"snippets": [s.to_json() for s in self.snippets], "createdAt": self.created_at}


def parse_end_room_payload(payload: str) -> str | None:
    """The reason in an ``end_room`` payload ("" or {"reason": "..."}), or None.

    Raises `ValueError` with the message the caller gets for anything else. Keys other than
    "reason" are ignored; a null reason counts as none.
    """
    if not payload.strip():
        return None
    try:
        value = json.loads(payload)
    except ValueError:
        raise ValueError(f"invalid end_room payload: not JSON; {_PAYLOAD_HINT}") from None
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
            type(value), "a number"
        )
        raise ValueError(
            f"invalid end_room payload: expected a JSON object, got {kind}; {_PAYLOAD_HINT}"
        )
    reason = value.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ValueError('invalid end_room payload: "reason" must be a string')
    return reason or None


# -- ending the room ---------------------------------------------------------------------------


class ServerAPI(Protocol):
    """What `end_room` needs from `LiveKitAPI` (so it can be tested with a fake)."""

    async def list_egress(
        self, *, room_name: str = "", egress_id: str = "", active: bool = False
    ) -> list[EgressInfo]: ...

    async def stop_egress(self, egress_id: str) -> EgressInfo: ...

    async def delete_room(self, room: str) -> None: ...


async def end_room(
    api: ServerAPI, room_name: str, *, attempts: int = 3, backoff: float = 0.5
) -> bool:
    """Stop `room_name`'s active egresses, then delete it. True once the room is gone.

    Egress failures never prevent the deletion: a server without an egress service (the
    open-source server without egress workers answers "bad_route") has nothing to stop, and
    an egress that cannot be stopped ends with the room anyway. DeleteRoom is retried on
    transport errors and "unavailable"; "not_found" means the room is already gone.
    """
    try:
        egresses = await api.list_egress(room_name=room_name, active=True)
    except (TwirpError, TransportError) as exc:
        if isinstance(exc, TwirpError) and exc.code in ("bad_route", "unimplemented"):
            log.info("no egress service on this server: no recording to stop (%s)", exc.code)
        else:
            log.warning("could not list the room's egresses: %s", exc)
        egresses = []
    for egress in egresses:
        if not egress.active:
            continue
        try:
            await api.stop_egress(egress.egress_id)
            log.info("stopped egress %s", egress.egress_id)
        except (TwirpError, TransportError) as exc:
            log.warning("could not stop egress %s: %s", egress.egress_id, exc)
    for attempt in range(1, attempts + 1):
        try:
            await api.delete_room(room_name)
        except TwirpError as exc:
            if exc.code == "not_found":
                log.info("room %r was already gone", room_name)
                return True
            if exc.code != "unavailable" or attempt == attempts:
                log.error("could not delete room %r: %s", room_name, exc)
                return False
        except TransportError as exc:
            if attempt == attempts:
                log.error("could not delete room %r: %s", room_name, exc)
                return False
        else:
            log.info("deleted room %r", room_name)
            return True
        await anyio.sleep(backoff * attempt)
    return False  # pragma: no cover - the loop always returns


# -- the agent ---------------------------------------------------------------------------------


class Agent:
    """One agent session in one room. `await run()` until the room ends.

    `options` are the Room's connect options (e.g. to confine ICE to some addresses);
    `started_at` (Unix ms) is the identity's timestamp, by default the current time.
    `end_room_grace` is how long `end_room` waits after acknowledging before it ends the room,
    so the acknowledgment reaches the caller before the room is torn down.
    """

    def __init__(
        self,
        *,
        url: str,
        api_key: str,
        api_secret: str,
        room_name: str,
        display_name: str,
        roleplay_id: str,
        options: RoomOptions | None = None,
        started_at: int | None = None,
        end_room_grace: float = 0.25,
    ) -> None:
        if not room_name or not display_name or not roleplay_id:
            raise ValueError("a room name, a display name and a roleplay id are required")
        self.url = url
        self.room_name = room_name
        self.display_name = display_name
        self.roleplay_id = roleplay_id
        self.started_at = now_ms() if started_at is None else started_at
        self.identity = f"{display_name}::{roleplay_id}::{self.started_at}"
        self.api = LiveKitAPI(url, api_key, api_secret)
        self.room = Room()
        self.transcript: Transcript | None = None
        self.disconnect_reason: DisconnectReason | None = None
        self._api_key = api_key
        self._api_secret = api_secret
        self._options = options or RoomOptions(auto_subscribe=False)
        self._grace = end_room_grace
        self._greeted = False
        self._ending = False
        self._ended_room: anyio.Event | None = None  # set when an end_room task is over
        self._tg: anyio.abc.TaskGroup | None = None
        self._turn: anyio.Lock | None = None
        self._gone: anyio.Event | None = None

    def __repr__(self) -> str:
        return f"Agent(identity={self.identity!r}, room={self.room_name!r})"

    # What the agent says. Override these for a different character.

    def greeting(self, user_name: str) -> str:
        return f"Hello {user_name}, I'm {self.display_name}. What would you like to talk about?"

    def reply(self, text: str, speaker_name: str) -> str | None:
        """The agent's answer to a user's finished utterance (None: say nothing)."""
        return f"You said: {text}"

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> DisconnectReason:
        """Join, then serve until the session ends; returns why it ended.

        `task_status.started()` is called once joined (for ``await task_group.start(...)``).
        Raises `ConnectError` if the join fails.
        """
        room = self.room
        self._turn = anyio.Lock()
        self._gone = anyio.Event()
        self._ended_room = anyio.Event()
        room.register_text_stream_handler(TOPIC_CHAT, self._on_chat)
        room.register_text_stream_handler(TOPIC_TRANSCRIPTION, self._on_transcription)
        room.local_participant.register_rpc_method("get_agent_transcript", self._get_transcript)
        room.local_participant.register_rpc_method("end_room", self._end_room)
        room.on("participant_connected", self._on_participant_connected)
        room.on("transcription_received", self._on_legacy_transcription)
        room.on("disconnected", self._on_disconnected)
        token = mint_token(
            self._api_key,
            self._api_secret,
            now=int(time.time()),
            grants=VideoGrants(
                room=self.room_name,
                room_join=True,
                can_subscribe=True,
                can_publish_data=True,
                can_update_own_metadata=True,
            ),
            identity=self.identity,
            name=self.display_name,
            kind="agent",
        )
        await room.connect(self.url, token, self._options)
        self.transcript = Transcript(created_at=now_ms())
        log.info("joined room %r as %r", self.room_name, self.identity)
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                task_status.started()
                # The first user already here is greeted (else the first to join).
                for participant in list(room.remote_participants.values()):
                    tg.start_soon(self._greet, participant)
                await self._gone.wait()
                if self._ending:  # the deletion disconnected us: let end_room finish its work
                    with anyio.move_on_after(10):
                        await self._ended_room.wait()
                tg.cancel_scope.cancel()
        finally:
            self._tg = None
            with anyio.CancelScope(shield=True):
                await room.disconnect()
        reason = self.disconnect_reason or DisconnectReason.CLIENT_INITIATED
        log.info("left room %r: %s", self.room_name, reason.name)
        return reason

    async def stop(self) -> None:
        """Leave the room (the room itself stays)."""
        await self.room.disconnect()

    # -- room events --------------------------------------------------------------------------

    def _on_disconnected(self, reason: DisconnectReason) -> None:
        self.disconnect_reason = reason
        if self._gone is not None:
            self._gone.set()

    def _on_participant_connected(self, participant: RemoteParticipant) -> None:
        if self._tg is not None:
            self._tg.start_soon(self._greet, participant)

    def _on_legacy_transcription(
        self,
        segments: list[TranscriptionSegment],
        participant: Participant | None,
        publication: None,
    ) -> None:
        if participant is None or self._tg is None:
            return
        for segment in segments:
            if segment.final:
                self._tg.start_soon(
                    self._heard, participant.identity, segment.text, "legacy", segment.id
                )

    async def _on_chat(self, reader: TextStreamReader, identity: str) -> None:
        text = await self._read(reader, identity)
        if text is not None:
            await self._heard(identity, text, "chat", "")

    async def _on_transcription(self, reader: TextStreamReader, identity: str) -> None:
        text = await self._read(reader, identity)  # the trailer's attributes are merged in
        if text is None:
            return
        attributes = reader.info.attributes or {}
        if attributes.get(ATTRIBUTE_FINAL) != "true":
            return
        segment_id = attributes.get(ATTRIBUTE_SEGMENT_ID) or reader.info.stream_id
        await self._heard(identity, text, "stream", segment_id)

    @staticmethod
    async def _read(reader: TextStreamReader, identity: str) -> str | None:
        """The whole text of a stream, or None if the sender aborted it (not a message)."""
        try:
            return await reader.read_all()
        except StreamError as exc:
            log.info(
                "ignored an incomplete %s stream from %r: %s", reader.info.topic, identity, exc
            )
            return None

    # -- the conversation ---------------------------------------------------------------------

    def _speaker(self, identity: str) -> tuple[str, bool]:
        """(speakerName, isUser) for a remote identity."""
        participant = self.room.remote_participants.get(identity)
        if participant is None:
            return identity, True
        return participant.name or identity, participant.kind != ParticipantKind.AGENT

    async def _heard(self, identity: str, text: str, source: str, segment_id: str) -> None:
        if identity == self.identity or self.transcript is None or self._turn is None:
            return
        name, is_user = self._speaker(identity)
        async with self._turn:  # one turn at a time: a user's words, then the agent's answer
            snippet = self.transcript.add(
                speaker_identity=identity,
                speaker_name=name,
                text=text,
                is_user=is_user,
                now=now_ms(),
                source=source,
                segment_id=segment_id,
            )
            if snippet is None or not is_user:
                return
            log.info("%s: %s", name, snippet.text)
            answer = self.reply(snippet.text, name)
            if answer:
                await self._say(answer)

    async def _greet(self, participant: RemoteParticipant) -> None:
        if participant.kind == ParticipantKind.AGENT or self._greeted:
            return
        self._greeted = True
        assert self._turn is not None
        async with self._turn:
            await self._say(self.greeting(participant.name or participant.identity))

    async def _say(self, text: str) -> None:
        """Publish one finished utterance as a final transcription segment, then record it."""
        if self.transcript is None or not self.room.isconnected():
            return
        segment_id = f"SG_{uuid.uuid4().hex[:12]}"
        try:
            await self.room.local_participant.send_text(
                text,
                topic=TOPIC_TRANSCRIPTION,
                attributes={ATTRIBUTE_SEGMENT_ID: segment_id, ATTRIBUTE_FINAL: "true"},
            )
        except Exception as exc:  # the room is going away: what was not said is not recorded
            log.warning("could not say %r: %s", text, exc)
            return
        self.transcript.add(
            speaker_identity=self.identity,
            speaker_name=self.display_name,
            text=text,
            is_user=False,
            now=now_ms(),
            source="agent",
            segment_id=segment_id,
        )
        log.info("%s: %s", self.display_name, text)

    # -- RPC methods --------------------------------------------------------------------------

    def _get_transcript(self, data: RpcInvocationData) -> str:
        # The documented payload is empty; anything else is ignored rather than refused.
        try:
            if self.transcript is None:
                return _json({"error": "the conversation has not started"})
            return _json(self.transcript.to_json())
        except Exception as exc:
            log.exception("get_agent_transcript failed")
            return _json({"error": f"could not build the transcript: {exc}"})

    def _end_room(self, data: RpcInvocationData) -> str:
        try:
            reason = parse_end_room_payload(data.payload)
        except ValueError as exc:
            log.warning("refused end_room from %r: %s", data.caller_identity, exc)
            return _json({"success": False, "error": str(exc)})
        if self._tg is None:
            return _json({"success": False, "error": "the agent is not ready"})
        if not self._ending:  # a repeated request is acknowledged again, and changes nothing
            self._ending = True
            self._tg.start_soon(self._end_the_room, reason, data.caller_identity)
        return _json(ACKNOWLEDGED)

    async def _end_the_room(self, reason: str | None, caller: str) -> None:
        log.info(
            "ending room %r at the request of %r; reason: %s",
            self.room_name,
            caller,
            reason or "(none given)",
        )
        try:
            await anyio.sleep(self._grace)  # let the acknowledgment reach the caller first
            if not await end_room(self.api, self.room_name):
                log.error("the room could not be deleted; the agent leaves it")
                await self.room.disconnect()
        finally:
            if self._ended_room is not None:
                self._ended_room.set()


# -- command line ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description="A Replay-style roleplay agent (lkproto).")
    parser.add_argument("--url", default=env("LIVEKIT_URL"), help="default: $LIVEKIT_URL")
    parser.add_argument("--api-key", default=env("LIVEKIT_API_KEY"), help="$LIVEKIT_API_KEY")
    parser.add_argument(
        "--api-secret", default=env("LIVEKIT_API_SECRET"), help="default: $LIVEKIT_API_SECRET"
    )
    parser.add_argument("--room", required=True, help="the room to join")
    parser.add_argument("--display-name", required=True, help="the agent's name")
    parser.add_argument("--roleplay-id", required=True, help="goes into the agent's identity")
    parser.add_argument(
        "--host-address",
        action="append",
        default=None,
        help="only gather ICE candidates on this local address (repeatable)",
    )
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    for name in ("url", "api_key", "api_secret"):
        if not getattr(args, name):
            parser.error(f"--{name.replace('_', '-')} (or LIVEKIT_{name.upper()}) is required")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    agent = Agent(
        url=args.url,
        api_key=args.api_key,
        api_secret=args.api_secret,
        room_name=args.room,
        display_name=args.display_name,
        roleplay_id=args.roleplay_id,
        options=RoomOptions(
            auto_subscribe=False, rtc_config=RtcConfiguration(host_addresses=args.host_address)
        ),
    )
    try:
        reason = anyio.run(agent.run, backend=args.backend)
    except KeyboardInterrupt:
        return 130
    ok = (DisconnectReason.ROOM_DELETED, DisconnectReason.CLIENT_INITIATED)
    return 0 if reason in ok else 1


if __name__ == "__main__":
    sys.exit(main())
