"""Generated protobuf classes for the LiveKit client wire format (package ``lkproto.wire``).

The ``*_pb2.py`` / ``*_pb2.pyi`` modules here are produced by ``proto/generate.py`` from
the hand-written schema in ``proto/lkproto/_pb/*.proto``; do not edit them by hand.
Import the modules directly, e.g. ``from lkproto._pb import data_pb2, signal_pb2``.
"""

__all__: list[str] = []
