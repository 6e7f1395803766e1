"""The adapters' public names: one shared list, the exceptions a user must catch, an explicit
`__all__` in every public module, the `_` prefix on every private one.

`make typecheck` runs `mypy --strict` on this file too, against the installed layout: each
attribute below fails there if mypy does not see the name as exported by that adapter (an
import of the same name placed before `from ._exports import *` once hid four of them).
"""

from __future__ import annotations

import importlib
import pkgutil
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

import lkproto.transports
from lkproto.transports import _exports, threaded
from lkproto.transports import anyio as lk_anyio
from lkproto.transports import trio as lk_trio

ADAPTERS: list[ModuleType] = [lk_anyio, lk_trio, threaded]

COMMON: dict[str, tuple[object, object, object]] = {
    "AudioFrame": (lk_anyio.AudioFrame, lk_trio.AudioFrame, threaded.AudioFrame),
    "AudioFrameEvent": (
        lk_anyio.AudioFrameEvent,
        lk_trio.AudioFrameEvent,
        threaded.AudioFrameEvent,
    ),
    "LocalAudioTrack": (
        lk_anyio.LocalAudioTrack,
        lk_trio.LocalAudioTrack,
        threaded.LocalAudioTrack,
    ),
    "ParticipantTrackPermission": (
        lk_anyio.ParticipantTrackPermission,
        lk_trio.ParticipantTrackPermission,
        threaded.ParticipantTrackPermission,
    ),
    "PublishTrackError": (
        lk_anyio.PublishTrackError,
        lk_trio.PublishTrackError,
        threaded.PublishTrackError,
    ),
    "RemoteAudioTrack": (
        lk_anyio.RemoteAudioTrack,
        lk_trio.RemoteAudioTrack,
        threaded.RemoteAudioTrack,
    ),
    "RemoteTrackPublication": (
        lk_anyio.RemoteTrackPublication,
        lk_trio.RemoteTrackPublication,
        threaded.RemoteTrackPublication,
    ),
    "RemoteVideoTrack": (
        lk_anyio.RemoteVideoTrack,
        lk_trio.RemoteVideoTrack,
        threaded.RemoteVideoTrack,
    ),
    "StreamState": (lk_anyio.StreamState, lk_trio.StreamState, threaded.StreamState),
    "Track": (lk_anyio.Track, lk_trio.Track, threaded.Track),
    "TrackKind": (lk_anyio.TrackKind, lk_trio.TrackKind, threaded.TrackKind),
    "TrackPublication": (
        lk_anyio.TrackPublication,
        lk_trio.TrackPublication,
        threaded.TrackPublication,
    ),
    "TrackPublishOptions": (
        lk_anyio.TrackPublishOptions,
        lk_trio.TrackPublishOptions,
        threaded.TrackPublishOptions,
    ),
    "TrackSource": (lk_anyio.TrackSource, lk_trio.TrackSource, threaded.TrackSource),
    "UnpublishTrackError": (
        lk_anyio.UnpublishTrackError,
        lk_trio.UnpublishTrackError,
        threaded.UnpublishTrackError,
    ),
    "ByteStreamInfo": (lk_anyio.ByteStreamInfo, lk_trio.ByteStreamInfo, threaded.ByteStreamInfo),
    "ConnectError": (lk_anyio.ConnectError, lk_trio.ConnectError, threaded.ConnectError),
    "ConnectionState": (
        lk_anyio.ConnectionState,
        lk_trio.ConnectionState,
        threaded.ConnectionState,
    ),
    "DataPacket": (lk_anyio.DataPacket, lk_trio.DataPacket, threaded.DataPacket),
    "DataPacketKind": (lk_anyio.DataPacketKind, lk_trio.DataPacketKind, threaded.DataPacketKind),
    "DataTrackFrame": (lk_anyio.DataTrackFrame, lk_trio.DataTrackFrame, threaded.DataTrackFrame),
    "DataTrackInfo": (lk_anyio.DataTrackInfo, lk_trio.DataTrackInfo, threaded.DataTrackInfo),
    "DisconnectReason": (
        lk_anyio.DisconnectReason,
        lk_trio.DisconnectReason,
        threaded.DisconnectReason,
    ),
    "E2EEManager": (lk_anyio.E2EEManager, lk_trio.E2EEManager, threaded.E2EEManager),
    "E2EEOptions": (lk_anyio.E2EEOptions, lk_trio.E2EEOptions, threaded.E2EEOptions),
    "EncryptionState": (
        lk_anyio.EncryptionState,
        lk_trio.EncryptionState,
        threaded.EncryptionState,
    ),
    "EncryptionType": (lk_anyio.EncryptionType, lk_trio.EncryptionType, threaded.EncryptionType),
    "KeyDerivationFunction": (
        lk_anyio.KeyDerivationFunction,
        lk_trio.KeyDerivationFunction,
        threaded.KeyDerivationFunction,
    ),
    "KeyProvider": (lk_anyio.KeyProvider, lk_trio.KeyProvider, threaded.KeyProvider),
    "KeyProviderOptions": (
        lk_anyio.KeyProviderOptions,
        lk_trio.KeyProviderOptions,
        threaded.KeyProviderOptions,
    ),
    "LkProtocolError": (
        lk_anyio.LkProtocolError,
        lk_trio.LkProtocolError,
        threaded.LkProtocolError,
    ),
    "LocalProtocolError": (
        lk_anyio.LocalProtocolError,
        lk_trio.LocalProtocolError,
        threaded.LocalProtocolError,
    ),
    "MetadataUpdateError": (
        lk_anyio.MetadataUpdateError,
        lk_trio.MetadataUpdateError,
        threaded.MetadataUpdateError,
    ),
    "Participant": (lk_anyio.Participant, lk_trio.Participant, threaded.Participant),
    "ParticipantKind": (
        lk_anyio.ParticipantKind,
        lk_trio.ParticipantKind,
        threaded.ParticipantKind,
    ),
    "PublishDataError": (
        lk_anyio.PublishDataError,
        lk_trio.PublishDataError,
        threaded.PublishDataError,
    ),
    "PublishDataTrackError": (
        lk_anyio.PublishDataTrackError,
        lk_trio.PublishDataTrackError,
        threaded.PublishDataTrackError,
    ),
    "PushFrameError": (lk_anyio.PushFrameError, lk_trio.PushFrameError, threaded.PushFrameError),
    "ReconnectMode": (lk_anyio.ReconnectMode, lk_trio.ReconnectMode, threaded.ReconnectMode),
    "RemoteParticipant": (
        lk_anyio.RemoteParticipant,
        lk_trio.RemoteParticipant,
        threaded.RemoteParticipant,
    ),
    "RoomOptions": (lk_anyio.RoomOptions, lk_trio.RoomOptions, threaded.RoomOptions),
    "RpcError": (lk_anyio.RpcError, lk_trio.RpcError, threaded.RpcError),
    "RpcInvocationData": (
        lk_anyio.RpcInvocationData,
        lk_trio.RpcInvocationData,
        threaded.RpcInvocationData,
    ),
    "ContinualGatheringPolicy": (
        lk_anyio.ContinualGatheringPolicy,
        lk_trio.ContinualGatheringPolicy,
        threaded.ContinualGatheringPolicy,
    ),
    "IceServer": (lk_anyio.IceServer, lk_trio.IceServer, threaded.IceServer),
    "IceTransportType": (
        lk_anyio.IceTransportType,
        lk_trio.IceTransportType,
        threaded.IceTransportType,
    ),
    "RtcConfiguration": (
        lk_anyio.RtcConfiguration,
        lk_trio.RtcConfiguration,
        threaded.RtcConfiguration,
    ),
    "SimulateScenario": (
        lk_anyio.SimulateScenario,
        lk_trio.SimulateScenario,
        threaded.SimulateScenario,
    ),
    "SipDTMF": (lk_anyio.SipDTMF, lk_trio.SipDTMF, threaded.SipDTMF),
    "StreamError": (lk_anyio.StreamError, lk_trio.StreamError, threaded.StreamError),
    "SubscribeDataTrackError": (
        lk_anyio.SubscribeDataTrackError,
        lk_trio.SubscribeDataTrackError,
        threaded.SubscribeDataTrackError,
    ),
    "TextStreamInfo": (lk_anyio.TextStreamInfo, lk_trio.TextStreamInfo, threaded.TextStreamInfo),
    "Transcription": (lk_anyio.Transcription, lk_trio.Transcription, threaded.Transcription),
    "TranscriptionSegment": (
        lk_anyio.TranscriptionSegment,
        lk_trio.TranscriptionSegment,
        threaded.TranscriptionSegment,
    ),
    "TransportClosedError": (
        lk_anyio.TransportClosedError,
        lk_trio.TransportClosedError,
        threaded.TransportClosedError,
    ),
    "TransportError": (lk_anyio.TransportError, lk_trio.TransportError, threaded.TransportError),
    "LocalVideoTrack": (
        lk_anyio.LocalVideoTrack,
        lk_trio.LocalVideoTrack,
        threaded.LocalVideoTrack,
    ),
    "VideoBufferType": (
        lk_anyio.VideoBufferType,
        lk_trio.VideoBufferType,
        threaded.VideoBufferType,
    ),
    "VideoCodec": (lk_anyio.VideoCodec, lk_trio.VideoCodec, threaded.VideoCodec),
    "VideoEncoding": (lk_anyio.VideoEncoding, lk_trio.VideoEncoding, threaded.VideoEncoding),
    "VideoFrame": (lk_anyio.VideoFrame, lk_trio.VideoFrame, threaded.VideoFrame),
    "VideoFrameEvent": (
        lk_anyio.VideoFrameEvent,
        lk_trio.VideoFrameEvent,
        threaded.VideoFrameEvent,
    ),
    "VideoRotation": (lk_anyio.VideoRotation, lk_trio.VideoRotation, threaded.VideoRotation),
    "VideoQuality": (lk_anyio.VideoQuality, lk_trio.VideoQuality, threaded.VideoQuality),
}

OWN: dict[str, tuple[object, object, object]] = {
    "AudioSource": (lk_anyio.AudioSource, lk_trio.AudioSource, threaded.AudioSource),
    "AudioStream": (lk_anyio.AudioStream, lk_trio.AudioStream, threaded.AudioStream),
    "LocalTrackPublication": (
        lk_anyio.LocalTrackPublication,
        lk_trio.LocalTrackPublication,
        threaded.LocalTrackPublication,
    ),
    "ByteStreamReader": (
        lk_anyio.ByteStreamReader,
        lk_trio.ByteStreamReader,
        threaded.ByteStreamReader,
    ),
    "ByteStreamWriter": (
        lk_anyio.ByteStreamWriter,
        lk_trio.ByteStreamWriter,
        threaded.ByteStreamWriter,
    ),
    "DataTrackStream": (
        lk_anyio.DataTrackStream,
        lk_trio.DataTrackStream,
        threaded.DataTrackStream,
    ),
    "LocalDataTrack": (lk_anyio.LocalDataTrack, lk_trio.LocalDataTrack, threaded.LocalDataTrack),
    "LocalParticipant": (
        lk_anyio.LocalParticipant,
        lk_trio.LocalParticipant,
        threaded.LocalParticipant,
    ),
    "RemoteDataTrack": (
        lk_anyio.RemoteDataTrack,
        lk_trio.RemoteDataTrack,
        threaded.RemoteDataTrack,
    ),
    "Room": (lk_anyio.Room, lk_trio.Room, threaded.Room),
    "VideoSource": (lk_anyio.VideoSource, lk_trio.VideoSource, threaded.VideoSource),
    "VideoStream": (lk_anyio.VideoStream, lk_trio.VideoStream, threaded.VideoStream),
    "TextStreamReader": (
        lk_anyio.TextStreamReader,
        lk_trio.TextStreamReader,
        threaded.TextStreamReader,
    ),
    "TextStreamWriter": (
        lk_anyio.TextStreamWriter,
        lk_trio.TextStreamWriter,
        threaded.TextStreamWriter,
    ),
}

MUST_CATCH = [
    "ConnectError",
    "LkProtocolError",
    "LocalProtocolError",
    "MetadataUpdateError",
    "PublishDataError",
    "PublishDataTrackError",
    "PushFrameError",
    "PublishTrackError",
    "RpcError",
    "StreamError",
    "SubscribeDataTrackError",
    "TransportClosedError",
    "TransportError",
    "UnpublishTrackError",
]


def test_every_adapter_exports_the_common_names_as_the_same_objects() -> None:
    assert sorted(COMMON) == sorted(_exports.__all__)
    for name, objects in COMMON.items():
        assert all(found is getattr(_exports, name) for found in objects), name
    for module in ADAPTERS:
        assert set(_exports.__all__) <= set(module.__all__)
        assert set(OWN) <= set(module.__all__)
        assert len(module.__all__) == len(set(module.__all__))


def test_the_async_adapters_share_their_objects_and_the_threaded_one_has_its_own() -> None:
    for name, (in_anyio, in_trio, in_threaded) in OWN.items():
        assert (in_trio is in_anyio) == (name not in {"Room"}), name
        assert in_threaded is not in_anyio, name


@pytest.mark.parametrize("module", ADAPTERS, ids=lambda m: m.__name__)
def test_the_exceptions_a_user_must_catch_are_exported_by_every_adapter(module: ModuleType) -> None:
    for name in MUST_CATCH:
        assert name in module.__all__
        assert issubclass(getattr(module, name), Exception)


def _modules() -> list[str]:
    found = []
    for info in pkgutil.walk_packages(lkproto.transports.__path__, "lkproto.transports."):
        if not info.name.rsplit(".", 1)[1].startswith("__"):  # __main__ would run the CLI
            found.append(info.name)
    return ["lkproto.transports", *found]


@pytest.mark.parametrize("name", _modules())
def test_public_modules_declare_all_and_every_listed_name_exists(name: str) -> None:
    module = importlib.import_module(name)
    parts = name.split(".")
    private = any(part.startswith("_") for part in parts)
    assert isinstance(getattr(module, "__all__", None), list), f"{name} has no __all__"
    assert [n for n in module.__all__ if not hasattr(module, n)] == []
    if not private:
        assert module.__doc__, f"{name}: a public module says what it is"


def test_the_layout_groups_the_command_line_and_the_test_kit() -> None:
    names = set(_modules())
    assert {"lkproto.transports.cli", "lkproto.transports.testing"} <= names
    assert {n for n in names if n.count(".") == 2 and not n.rsplit(".", 1)[1].startswith("_")} == {
        "lkproto.transports.anyio",
        "lkproto.transports.api",
        "lkproto.transports.cli",
        "lkproto.transports.pytest_plugin",
        "lkproto.transports.testing",
        "lkproto.transports.threaded",
        "lkproto.transports.trio",
    }


def test_every_package_of_the_transports_is_listed_for_the_wheel() -> None:
    repo = Path(__file__).resolve().parents[2]
    listed = set(
        tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    on_disk = {
        ".".join(["lkproto", "transports", *init.parent.relative_to(repo / "transports").parts])
        for init in (repo / "transports").rglob("__init__.py")
    }
    assert on_disk <= listed
    assert {"lkproto.transports.cli", "lkproto.transports.testing"} <= on_disk
