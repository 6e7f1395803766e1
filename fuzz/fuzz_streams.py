"""Fuzz target `streams`: `lkproto.streams.StreamAssembler` fed sequences of stream packets,
consumption and timer ticks.

`python -m fuzz.fuzz_streams [libFuzzer flags] [corpus dirs]`; see fuzz/README.md.
"""

from fuzz._main import main

if __name__ == "__main__":
    main("streams")
