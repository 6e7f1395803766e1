"""`python -m lkproto`: the `lkproto` command line (same as the console script).

The command line lives in the adapters (`lkproto.transports.cli`), which the core never
imports: this entry point is not part of the core, and loads it by name only when run.
"""

import importlib
import sys

if __name__ == "__main__":
    sys.exit(importlib.import_module("lkproto.transports.cli").main())
