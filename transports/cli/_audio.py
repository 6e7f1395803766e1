"""The audio subcommands: `publish-audio FILE.wav` and `record --participant ID --out FILE.wav`.

publish-audio reads a 16-bit PCM WAV file (mono or stereo, 8 to 192 kHz in steps of 100 Hz)
and publishes it as a microphone track in real time, 20 ms at a time, with a progress bar;
it leaves once everything was sent (or with --wait-for-subscriber, first waits for
someone to subscribe). record subscribes to one participant's audio track (the first it
publishes, microphone first) and writes it to a 16-bit WAV file at --rate and --channels
until --duration passes, the track ends, or SIGINT/SIGTERM.
"""

from __future__ import annotations

import contextlib
import time
import wave
from collections.abc import Iterable
from pathlib import Path

import anyio

from lkproto.errors import LkProtocolError

from ..anyio import (
    AudioFrame,
    AudioSource,
    AudioStream,
    LocalAudioTrack,
    PublishTrackError,
    RemoteAudioTrack,
    RemoteTrackPublication,
    TrackKind,
    TrackPublishOptions,
    TrackSource,
)
from ._config import CliError, ExitCode
from ._context import Context
from ._progress import ProgressBar
from ._session import Session

__all__ = ["cmd_publish_audio", "cmd_record"]

_FRAME_MS = 20
_SETTLE = 0.5  # seconds: a subscriber's media path comes up (F1.5), the tail arrives


def _open_wav(path: Path) -> wave.Wave_read:
    """The WAV file at `path`, checked: 16-bit PCM in a format a source takes."""
    try:
        reader = wave.open(str(path), "rb")  # noqa: SIM115 - the caller closes it
    except FileNotFoundError:
        raise CliError(f"no such file: {path}", ExitCode.USAGE) from None
    except (wave.Error, EOFError, OSError) as exc:
        raise CliError(f"not a WAV file {path}: {exc}", ExitCode.USAGE) from None
    rate, channels, width = reader.getframerate(), reader.getnchannels(), reader.getsampwidth()
    problem = ""
    if width != 2 or reader.getcomptype() != "NONE":
        problem = "only 16-bit PCM WAV files can be sent"
    else:
        try:
            AudioSource(rate, channels)
        except (TypeError, ValueError) as exc:
            problem = str(exc)
    if problem:
        reader.close()
        raise CliError(f"{path}: {problem}", ExitCode.USAGE)
    return reader


async def cmd_publish_audio(ctx: Context) -> int:
    a = ctx.args
    path = Path(a.path)
    with contextlib.closing(_open_wav(path)) as reader:
        rate, channels = reader.getframerate(), reader.getnchannels()
        total_frames = reader.getnframes()
        session = Session(ctx)
        console, room = ctx.console, session.room
        step = rate * _FRAME_MS // 1000
        async with session.joined(watch=False):
            source = AudioSource(rate, channels, queue_size_ms=200)
            track = LocalAudioTrack.create_audio_track(a.track_name, source)
            try:
                publication = await room.local_participant.publish_track(
                    track, TrackPublishOptions(source=TrackSource.SOURCE_MICROPHONE)
                )
            except PublishTrackError as exc:
                raise CliError(f"publish-audio failed: {exc}", ExitCode.FAILED) from None
            console.print(f"published {publication.sid} name={a.track_name} from {path.name}")
            if a.wait_for_subscriber:
                await publication.wait_for_subscription()
                console.print("a participant subscribed")
                await anyio.sleep(_SETTLE)  # its media path comes up just after
            seconds = total_frames / rate
            bar = ProgressBar(console, f"playing {path.name}", total_frames * 2 * channels)
            sent = 0
            try:
                while chunk := await anyio.to_thread.run_sync(reader.readframes, step):
                    samples = len(chunk) // (2 * channels)
                    await source.capture_frame(AudioFrame(chunk, rate, channels, samples))
                    sent += len(chunk)
                    bar.update(sent)
                await source.wait_for_playout()
                await anyio.sleep(_SETTLE)  # the last frames through the SFU and jitter buffers
            except LkProtocolError as exc:
                bar.finish(sent)
                raise CliError(f"publish-audio failed: {exc}", ExitCode.FAILED) from None
            bar.finish(sent)
            await room.local_participant.unpublish_track(publication.sid)
            console.print(
                f"sent {seconds:.2f} s of audio from {path.name} ({rate} Hz, {channels} ch)"
            )
    return ExitCode.OK


def _pick(publications: Iterable[object]) -> RemoteTrackPublication | None:
    audio = [
        p
        for p in publications
        if isinstance(p, RemoteTrackPublication) and p.kind == TrackKind.KIND_AUDIO
    ]
    audio.sort(key=lambda p: p.source != TrackSource.SOURCE_MICROPHONE)
    return audio[0] if audio else None


async def cmd_record(ctx: Context) -> int:
    a = ctx.args
    out = Path(a.out)
    try:
        AudioSource(a.rate, a.channels)
    except (TypeError, ValueError) as exc:
        raise CliError(f"bad --rate/--channels: {exc}", ExitCode.USAGE) from None
    session = Session(ctx)
    console, room = ctx.console, session.room
    subscribed = anyio.Event()
    found: list[RemoteAudioTrack] = []

    def on_subscribed(track: object, publication: object, participant: object) -> None:
        identity = getattr(participant, "identity", "")
        if identity == a.participant and isinstance(track, RemoteAudioTrack) and not found:
            found.append(track)
            subscribed.set()

    room.on("track_subscribed", on_subscribed)
    ctx.stay = True
    async with session.joined(watch=False):
        await session.wait_for_participants([a.participant], a.wait)
        participant = room.remote_participants[a.participant]
        changed = anyio.Event()
        room.on("track_published", lambda *_: changed.set())
        with anyio.move_on_after(a.wait):
            while (publication := _pick(participant.track_publications.values())) is None:
                await changed.wait()
                changed = anyio.Event()
        if publication is None:
            raise CliError(
                f"{a.participant!r} publishes no audio track (waited {a.wait:g}s)",
                ExitCode.UNKNOWN_PARTICIPANT,
            )
        publication.set_subscribed(True)
        with anyio.move_on_after(max(a.wait, 5.0)):
            await subscribed.wait()
        if not found:
            raise CliError(f"could not subscribe to {publication.sid}", ExitCode.FAILED)
        stream = AudioStream(found[0], sample_rate=a.rate, num_channels=a.channels)
        console.print(f"recording {publication.sid} from {a.participant} to {out}")
        total = None if a.duration is None else int(a.duration * a.rate) * 2 * a.channels
        bar = ProgressBar(console, f"recording {out.name}", total, mode=ctx.progress)
        written = 0
        try:
            writer = wave.open(str(out), "wb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise CliError(f"cannot write {out}: {exc.strerror or exc}", ExitCode.USAGE) from None
        started = time.monotonic()
        with contextlib.closing(writer):
            writer.setnchannels(a.channels)
            writer.setsampwidth(2)
            writer.setframerate(a.rate)
            # --duration counts audio; the wall clock only guards against a silent track.
            limit = float("inf") if a.duration is None else a.duration + max(a.wait, 5.0)
            with anyio.move_on_after(limit):
                async for event in stream:
                    data = event.frame.pcm()
                    if total is not None:
                        data = data[: max(0, total - written)]
                    await anyio.to_thread.run_sync(writer.writeframes, data)
                    written += len(data)
                    bar.update(written)
                    if total is not None and written >= total:
                        break
            await stream.aclose()
        bar.finish(written)
        seconds = written / (2 * a.channels * a.rate)
        console.print(
            f"recorded {seconds:.2f} s from {a.participant} to {out} "
            f"({a.rate} Hz, {a.channels} ch) in {time.monotonic() - started:.1f} s"
        )
    return ExitCode.OK
