"""Fuzz target `signal_connecting`: `Connection.receive_signal` on a connection still joining:
the first message decides the join, then everything after it.

`python -m fuzz.fuzz_signal_connecting [libFuzzer flags] [corpus dirs]`; see fuzz/README.md.
"""

from fuzz._main import main

if __name__ == "__main__":
    main("signal_connecting")
