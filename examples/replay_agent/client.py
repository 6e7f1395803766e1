"""The user's side of the Replay agent RPC interface, with lkproto.

It joins the room, finds the agent (the participant of kind agent), fetches the transcript
with ``get_agent_transcript``, prints it, asks the agent to ``end_room`` with a reason, and
waits until the server has deleted the room (its own session ends with reason ROOM_DELETED).
Exit status 0 means all of that happened.

    python examples/replay_agent/client.py --url ws://127.0.0.1:7880 --api-key KEY \\
        --api-secret SECRET --room my-room --reason "User clicked end call button"

LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET are read from the environment when the
options are not given. The transcript is printed one snippet a line ("Speaker (user): text");
``--json`` prints the response of ``get_agent_transcript`` as JSON instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence

import anyio

from lkproto import ParticipantKind
from lkproto.tokens import VideoGrants, mint_token
from lkproto.transports.anyio import (
    ConnectError,
    DisconnectReason,
    RemoteParticipant,
    Room,
    RoomOptions,
    RpcError,
    RtcConfiguration,
)

__all__ = ["ClientError", "find_agent", "format_transcript", "main", "run_client"]


class ClientError(Exception):
    """The session did not go as the interface promises; the message says where."""


async def find_agent(room: Room, identity: str | None = None) -> RemoteParticipant:
    """The agent in `room`: the participant named `identity`, or the first of kind agent.

    Waits for it to join (cancel with a timeout around the call).
    """
    arrived = anyio.Event()
    room.on("participant_connected", lambda participant: arrived.set())
    while True:
        for participant in room.remote_participants.values():
            if identity is not None:
                if participant.identity == identity:
                    return participant
            elif participant.kind == ParticipantKind.AGENT:
                return participant
        await arrived.wait()
        arrived = anyio.Event()


def format_transcript(response: dict[str, object]) -> list[str]:
    """One line per snippet: ``speakerName (user|agent): text``."""
    snippets = response.get("snippets")
    if not isinstance(snippets, list):
        raise ClientError(f"get_agent_transcript: no snippets in {response!r}")
    lines = []
    for snippet in snippets:
        if not isinstance(snippet, dict):
            raise ClientError(f"get_agent_transcript: a snippet is not an object: {snippet!r}")
        who = "user" if snippet.get("isUser") else "agent"
        lines.append(f"{snippet.get('speakerName')} ({who}): {snippet.get('text')}")
    return lines


async def run_client(
    *,
    url: str,
    api_key: str,
    api_secret: str,
    room_name: str,
    identity: str = "replay-client",
    reason: str = "",
    agent_identity: str | None = None,
    options: RoomOptions | None = None,
    timeout: float = 30.0,
    as_json: bool = False,
) -> dict[str, object]:
    """Run the whole exchange; returns the transcript response. Raises `ClientError`."""
    token = mint_token(
        api_key,
        api_secret,
        now=int(time.time()),
        grants=VideoGrants(room=room_name, room_join=True, can_publish_data=True),
        identity=identity,
        name=identity,
    )
    room = Room()
    ended = anyio.Event()
    reasons: list[DisconnectReason] = []

    def on_disconnected(why: DisconnectReason) -> None:
        reasons.append(why)
        ended.set()

    room.on("disconnected", on_disconnected)
    try:
        await room.connect(url, token, options or RoomOptions(auto_subscribe=False))
        with anyio.fail_after(timeout):
            agent = await find_agent(room, agent_identity)
        print(f"agent: {agent.identity} ({agent.name})", file=sys.stderr)

        transcript = json.loads(
            await room.local_participant.perform_rpc(
                destination_identity=agent.identity, method="get_agent_transcript", payload=""
            )
        )
        if not isinstance(transcript, dict) or "error" in transcript:
            raise ClientError(f"get_agent_transcript failed: {transcript!r}")
        if as_json:
            print(json.dumps(transcript, ensure_ascii=False))
        else:
            for line in format_transcript(transcript):
                print(line)

        payload = json.dumps({"reason": reason}) if reason else ""
        answer = json.loads(
            await room.local_participant.perform_rpc(
                destination_identity=agent.identity, method="end_room", payload=payload
            )
        )
        if not isinstance(answer, dict) or answer.get("success") is not True:
            raise ClientError(f"end_room was not acknowledged: {answer!r}")
        print(f"end_room: {answer.get('message')}", file=sys.stderr)

        with anyio.fail_after(timeout):
            await ended.wait()
        if reasons != [DisconnectReason.ROOM_DELETED]:
            raise ClientError(f"the session ended with {reasons!r}, not ROOM_DELETED")
        print("room deleted", file=sys.stderr)
        return transcript
    except TimeoutError:
        raise ClientError(f"timed out after {timeout:g}s") from None
    except (ConnectError, RpcError, ValueError) as exc:
        raise ClientError(f"{type(exc).__name__}: {exc}") from None
    finally:
        await room.disconnect()


def main(argv: Sequence[str] | None = None) -> int:
    env = os.environ.get
    parser = argparse.ArgumentParser(description="Fetch a Replay agent's transcript, end the room.")
    parser.add_argument("--url", default=env("LIVEKIT_URL"), help="default: $LIVEKIT_URL")
    parser.add_argument("--api-key", default=env("LIVEKIT_API_KEY"), help="$LIVEKIT_API_KEY")
    parser.add_argument(
        "--api-secret", default=env("LIVEKIT_API_SECRET"), help="default: $LIVEKIT_API_SECRET"
    )
    parser.add_argument("--room", required=True)
    parser.add_argument("--identity", default="replay-client", help="our identity in the room")
    parser.add_argument("--agent-identity", help="default: the first participant of kind agent")
    parser.add_argument("--reason", default="", help="sent with end_room (default: none)")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--json", action="store_true", help="print the transcript as JSON")
    parser.add_argument(
        "--host-address",
        action="append",
        default=None,
        help="only gather ICE candidates on this local address (repeatable)",
    )
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    args = parser.parse_args(argv)
    for name in ("url", "api_key", "api_secret"):
        if not getattr(args, name):
            parser.error(f"--{name.replace('_', '-')} (or LIVEKIT_{name.upper()}) is required")

    async def go() -> dict[str, object]:
        return await run_client(
            url=args.url,
            api_key=args.api_key,
            api_secret=args.api_secret,
            room_name=args.room,
            identity=args.identity,
            reason=args.reason,
            agent_identity=args.agent_identity,
            options=RoomOptions(
                auto_subscribe=False,
                rtc_config=RtcConfiguration(host_addresses=args.host_address),
            ),
            timeout=args.timeout,
            as_json=args.json,
        )

    try:
        anyio.run(go, backend=args.backend)
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
