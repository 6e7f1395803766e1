"""Fuzz target `signal_joined`: `Connection.receive_signal` on a joined connection: participant
updates, leave, room updates, metadata responses, keepalive.

`python -m fuzz.fuzz_signal_joined [libFuzzer flags] [corpus dirs]`; see fuzz/README.md.
"""

from fuzz._main import main

if __name__ == "__main__":
    main("signal_joined")
