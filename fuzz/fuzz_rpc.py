"""Fuzz target `rpc`: `lkproto.rpc.RpcTable` fed sequences of requests, acks, responses,
verbs and timer ticks.

`python -m fuzz.fuzz_rpc [libFuzzer flags] [corpus dirs]`; see fuzz/README.md.
"""

from fuzz._main import main

if __name__ == "__main__":
    main("rpc")
