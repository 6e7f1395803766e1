"""Fuzz target `e2ee`: `lkproto.e2ee`'s `KeyProvider` and `DataCryptor` fed encrypted data
packets (raw, hostile envelopes, really sealed ones), data-track frames and key verbs.

`python -m fuzz.fuzz_e2ee [libFuzzer flags] [corpus dirs]`; see fuzz/README.md.
"""

from fuzz._main import main

if __name__ == "__main__":
    main("e2ee")
