# test_sensor.py: a lossy data track, tested with no server, on a virtual clock.
import anyio
import pytest

from lkproto.transports.anyio import DataTrackFrame, RemoteDataTrack, Room
from lkproto.transports.testing import MemoryServer, VirtualTimeLoop


# The application code under test: a sensor publishes readings; a viewer reads them.
async def publish_readings(room: Room, count: int) -> None:
    track = await room.local_participant.publish_data_track(name="temperature")
    for n in range(count):
        track.try_push(DataTrackFrame(payload=b"%d" % (20 + n % 5), user_timestamp=n))
        await anyio.sleep(0.1)
    await track.unpublish()


async def read_readings(track: RemoteDataTrack) -> list[int | None]:
    stamps = []
    async for frame in track.subscribe():  # ends when the sensor unpublishes
        stamps.append(frame.user_timestamp)
    return stamps


# The test: the room loses 20% of data-track packets, the same ones on every run.
@pytest.fixture
def anyio_backend() -> object:
    return ("asyncio", {"loop_factory": VirtualTimeLoop})


@pytest.mark.anyio
async def test_a_viewer_gets_the_readings_that_survive_the_loss() -> None:
    async with MemoryServer(data_track_loss=0.2, data_track_seed=7) as server:
        sensor, viewer = Room(), Room()
        tracks: list[RemoteDataTrack] = []
        viewer.on("data_track_published", tracks.append)
        await viewer.connect(server.url, server.token("viewer"))
        await sensor.connect(server.url, server.token("sensor"))
        async with anyio.create_task_group() as tg:
            tg.start_soon(publish_readings, sensor, 100)
            while not tracks:
                await anyio.sleep(0.01)
            stamps = await read_readings(tracks[0])
        await sensor.disconnect()
        await viewer.disconnect()
    assert 50 < len(stamps) < 100  # lossy: some readings never arrive
    assert stamps == sorted(set(stamps))  # each at most once, in order
