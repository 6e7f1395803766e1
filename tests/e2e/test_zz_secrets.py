"""No credential in any log record or exception message of the e2e suite.

The `harness.secrets_audit` plugin watched the whole session (see its docstring); this file's
name sorts last among the e2e files, so by the time it runs every other e2e test has. Run
alone it checks nothing and is skipped.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from harness import secrets_audit
from harness.tokens import API_SECRET, mint_token
from lkproto._pb import signal_pb2
from lkproto.errors import RemoteProtocolError
from lkproto.models import IceServer
from lkproto.transports.anyio import ConnectError

# After every other test; under xdist on one worker once the others have exited, with what
# they saw absorbed into this worker's audit (harness/secrets_audit.py, harness/phases.py).
# It audits the e2e suite, so it belongs to it: `-m "not e2e"` (`make check`) leaves it out.
pytestmark = [pytest.mark.last, pytest.mark.e2e]


def auditor() -> secrets_audit.Auditor:
    found = secrets_audit.AUDITOR
    assert found is not None, "the secrets_audit plugin is not registered (tests/conftest.py)"
    return found


def test_no_token_nor_the_api_secret_was_logged_or_raised_by_the_e2e_suite() -> None:
    audit = auditor()
    ran = audit.counts["e2e_tests"]
    if ran == 0:
        pytest.skip("no other e2e test ran in this session: nothing to audit")
    print(
        f"\nsecrets audit: {ran} e2e tests, {len(audit.tokens)} tokens minted, "
        f"{audit.counts}, records by logger {dict(audit.loggers.most_common())}, "
        f"{len(audit.hits)} hits"
    )
    assert audit.hits == []
    assert audit.counts["reports"] >= 3 * ran  # setup, call and teardown of each
    assert audit.token_count
    every_file = {f"tests/e2e/{path.name}" for path in Path(__file__).parent.glob("test_*.py")}
    if audit.e2e_files >= every_file:
        # The whole e2e suite ran: the audit must have seen a great deal (it saw 717 705
        # records, 1 007 tokens, 1 613 exception and 3 728 event texts for 292 tests), so a
        # capture that broke fails here instead of passing quietly.
        assert audit.counts["records"] >= 500 * ran
        assert audit.token_count >= 2 * ran
        assert audit.counts["exceptions"] >= ran
        assert audit.counts["events"] >= 2 * ran
        assert audit.loggers["livekit"] and audit.loggers["aiortc"] and audit.loggers["lkproto"]


def test_the_audit_catches_a_planted_token_and_secret() -> None:
    """Runs after the real check: plants leaks through the live session-wide capture and
    expects each to be caught (then forgets them)."""
    audit = auditor()
    token = mint_token("planted", "planted-room")  # recorded by the wrapped minting function
    assert audit.tokens[-1] == token
    signature = token.rsplit(".", 1)[1]
    log = logging.getLogger("lkproto.transports")
    with secrets_audit.planted(audit) as hits:
        log.debug("connecting with %s", token)  # the whole token, at DEBUG
        log.debug("sig=%s", signature[5:30])  # 25 characters of the signature only
        log.debug("bearer %s...", token[:-30])  # the token without most of its signature
        try:
            raise RuntimeError(f"wrapped {API_SECRET}")
        except RuntimeError:
            log.exception("failed")  # the secret in a logged traceback
        ConnectError(f"the server said: invalid token: {token}")  # created, never raised
        RemoteProtocolError(f"access_token={token}")
    assert len(hits) == 5, hits
    assert [h.split(":", 1)[0] for h in hits] == [
        "log record lkproto.transports",
        "log record lkproto.transports",
        "log record lkproto.transports",
        "exception ConnectError",
        "exception RemoteProtocolError",
    ]
    assert all(token not in h and API_SECRET not in h for h in hits)  # hits name no secret
    # A TURN password the server handed the core (the join's `ice_servers`) is secret too.
    pb = signal_pb2.ICEServer(
        urls=["turn:10.213.77.1:3478?transport=udp"],
        username="turn-user",
        credential="PlantedTurnPassword0123456789abcdefghij",
    )
    server = IceServer.from_pb(pb)  # recorded by the wrapped reader
    assert "PlantedTurnPassword" not in repr(server)
    with secrets_audit.planted(audit) as turn_hits:
        log.debug("TURN %s:%s", server.username, server.credential)
        ConnectError(f"no TURN allocation: {server.credential[3:30]}")
    assert [h.split(":", 1)[0] for h in turn_hits] == [
        "log record lkproto.transports",
        "exception ConnectError",
    ]
    assert audit.leaks("nothing secret here, not even lkproto-dev-key") == []
