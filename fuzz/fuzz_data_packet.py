"""Fuzz target `data_packet`: `Connection.receive_data_packet` on `_reliable` and `_lossy`,
interleaved with the RPC and stream verbs of a joined connection.

`python -m fuzz.fuzz_data_packet [libFuzzer flags] [corpus dirs]`; see fuzz/README.md.
"""

from fuzz._main import main

if __name__ == "__main__":
    main("data_packet")
