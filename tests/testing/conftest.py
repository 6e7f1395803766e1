"""The `lkproto.transports.pytest_plugin` fixtures, for the tests in this folder.

An application lists the plugin in `pytest_plugins`; here it is not registered for the whole
suite (that needs an entry in pyproject.toml), so its fixtures are imported.
"""

from lkproto.transports.pytest_plugin import (  # noqa: F401
    memory_room,
    memory_room_options,
    memory_server,
    memory_token,
)
