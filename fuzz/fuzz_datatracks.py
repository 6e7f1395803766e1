"""Fuzz target `datatracks`: `lkproto.datatracks.DataTrackManager` fed `_data_track` packets,
built frames, signal messages, verbs and timer ticks (fuzz/_datatracks.py).

`python -m fuzz.fuzz_datatracks [libFuzzer flags] [corpus dirs]`; see fuzz/README.md.
"""

from fuzz._main import main

if __name__ == "__main__":
    main("datatracks")
