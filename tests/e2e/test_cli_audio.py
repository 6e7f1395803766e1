"""`lkproto publish-audio` and `lkproto record` against the real server, with the official SDK
as the other participant, proven by content (the WAV file recorded, what the official side
heard). Commands run as subprocesses of the installed console script, as in
test_cli_e2e.py."""

from __future__ import annotations

import os
import subprocess
import sys
import wave
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import numpy as np
import pytest

from harness import API_KEY, API_SECRET, LiveKitServer
from harness.audio import Capture, official_publish, official_reader, tone
from harness.official import OfficialLoop, OfficialPeer

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(120)]


def cli(server: LiveKitServer, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
    env.update(LIVEKIT_URL=server.url, LIVEKIT_API_KEY=API_KEY, LIVEKIT_API_SECRET=API_SECRET)
    script = Path(sys.executable).with_name("lkproto")
    return subprocess.run(
        [str(script), *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def write_wav(path: Path, freq: float, rate: int, channels: int, seconds: float) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(tone(freq, rate, channels, int(rate * seconds)))


def read_wav(path: Path) -> Capture:
    capture = Capture()
    with wave.open(str(path), "rb") as wav:
        rate, channels = wav.getframerate(), wav.getnchannels()
        capture.add(wav.readframes(wav.getnframes()), rate, channels)
    return capture


@pytest.mark.heavy("media")  # real time: the media lane, first call on the CPU (harness/phases.py)
async def test_record_writes_the_official_tone_to_a_wav_file(
    livekit_server: Any, room_name: str, official_loop: OfficialLoop, tmp_path: Path
) -> None:
    from harness import mint_token

    peer = OfficialPeer(official_loop)
    await peer.connect(livekit_server.url, mint_token("official", room_name))
    try:
        await peer.do(lambda r: official_publish(r, 440, 30.0))
        out = tmp_path / "heard.wav"
        argv = ["record", "--room", room_name, "--identity", "rec", "--participant", "official"]
        done = await anyio.to_thread.run_sync(
            lambda: cli(
                livekit_server,
                *argv,
                "--out",
                str(out),
                "--duration",
                "3",  # 1.8 s of tone in 3 (a loaded run once wrote 1.64 s of 2)
                "--rate",
                "16000",
                "--progress",
                "lines",
            )
        )
        assert done.returncode == 0, done.stderr
        assert "recorded 3.00 s from official" in done.stdout
        assert "recording heard.wav" in done.stderr  # the progress lines
        heard = read_wav(out)
        assert (heard.rate, heard.channels) == (16000, 1)
        assert heard.loud_seconds() >= 1.8, heard.summary()
        assert abs(heard.frequency() - 440) <= 5, heard.summary()
    finally:
        await peer.disconnect()


@pytest.mark.heavy("media")  # real time: the media lane, first call on the CPU (harness/phases.py)
async def test_publish_audio_plays_a_wav_file_to_the_official_sdk(
    livekit_server: Any, room_name: str, official_loop: OfficialLoop, tmp_path: Path
) -> None:
    from harness import mint_token

    heard: dict[str, Capture] = {}
    peer = OfficialPeer(official_loop)
    peer.on_room.append(lambda room: official_reader(room, heard, "player"))
    await peer.connect(livekit_server.url, mint_token("official", room_name), auto_subscribe=True)
    try:
        wav = tmp_path / "tone.wav"
        write_wav(wav, 1000, 16000, 2, 2.0)
        argv = ["publish-audio", str(wav), "--room", room_name, "--identity", "player"]
        done = await anyio.to_thread.run_sync(
            lambda: cli(livekit_server, *argv, "--wait-for-subscriber", "--progress", "lines")
        )
        assert done.returncode == 0, done.stderr
        assert "sent 2.00 s of audio from tone.wav (16000 Hz, 2 ch)" in done.stdout
        (capture,) = heard.values()
        assert capture.loud_seconds() >= 1.8, capture.summary()
        assert abs(capture.frequency() - 1000) <= 5, capture.summary()

        bad = tmp_path / "bad.wav"
        with wave.open(str(bad), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(1)  # 8-bit
            out.setframerate(8000)
            out.writeframes(np.zeros(800, dtype=np.uint8).tobytes())
        refused = cli(livekit_server, "publish-audio", str(bad), "--room", room_name)
        assert refused.returncode == 2 and "only 16-bit PCM" in refused.stderr
        missing = cli(
            livekit_server, "publish-audio", str(tmp_path / "nope.wav"), "--room", room_name
        )
        assert missing.returncode == 2 and "no such file" in missing.stderr
    finally:
        await peer.disconnect()
