"""`python -m lkproto.transports.cli`: the `lkproto` console script."""

import sys

from . import main

sys.exit(main())
