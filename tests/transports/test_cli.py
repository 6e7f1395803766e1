"""The `lkproto` command line without a server: grammar, configuration, exit codes, output.

Nothing here opens a connection. `main()` is called in-process; every case that reaches a
room command fails (or finishes, for `token`) before a socket is opened, which is itself part
of what is tested: bad input is refused up front with exit code 2 and one line.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import jwt
import pytest

from lkproto.tokens import VideoGrants
from lkproto.transports import cli
from lkproto.transports.cli._config import (
    CliError,
    ExitCode,
    default_host_addresses,
    is_local_address,
    parse_grants,
    resolve_credentials,
    resolve_host_addresses,
    validate_url,
)
from lkproto.transports.cli._progress import Console, ProgressBar, format_progress, format_size
from lkproto.transports.cli._util import (
    create_unique,
    load_handler,
    one_line,
    printable,
    safe_filename,
    show_bytes,
)

KEY = "cli-test-key"
SECRET = "cli-test-secret-0123456789abcdefghijklmnop"
MIB = 1024 * 1024


@pytest.fixture(autouse=True)
def _no_livekit_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("LIVEKIT_"):
            monkeypatch.delenv(name)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- format_progress ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("done", "total", "elapsed", "expected"),
    [
        (0, 4 * MIB, 0.0, "[--------------------]   0%  0.00/4.00 MiB  -- MiB/s  ETA --:--"),
        (MIB, 4 * MIB, 0.5, "[#####---------------]  25%  1.00/4.00 MiB  2.00 MiB/s  ETA 0:02"),
        (2 * MIB, 4 * MIB, 1.0, "[##########----------]  50%  2.00/4.00 MiB  2.00 MiB/s  ETA 0:01"),
        (4 * MIB, 4 * MIB, 2.0, "[####################] 100%  4.00/4.00 MiB  2.00 MiB/s  ETA 0:00"),
        # 99.99 % is not 100 % and the bar is not full until the last byte.
        (
            4 * MIB - 1,
            4 * MIB,
            2.0,
            "[###################-]  99%  4.00/4.00 MiB  2.00 MiB/s  ETA 0:01",
        ),
        # Minutes and hours in the ETA.
        (MIB, 200 * MIB, 1.0, "[--------------------]   0%  1.00/200.00 MiB  1.00 MiB/s  ETA 3:19"),
        (
            MIB,
            4000 * MIB,
            1.0,
            "[--------------------]   0%  0.00/3.91 GiB  1.00 MiB/s  ETA 1:06:39",
        ),
        # Small totals are shown in their own unit.
        (512, 1024, 1.0, "[##########----------]  50%  0.50/1.00 KiB  0.00 MiB/s  ETA 0:01"),
        (100, 300, 1.0, "[######--------------]  33%  100/300 B  0.00 MiB/s  ETA 0:02"),
        (0, 0, 0.0, "[####################] 100%  0/0 B  -- MiB/s  ETA 0:00"),
        # Unknown total: bytes and rate only.
        (3 * MIB, None, 2.0, "3.00 MiB  1.50 MiB/s"),
        (0, None, 0.0, "0 B  -- MiB/s"),
        # More than announced is clamped, never over 100 %.
        (5 * MIB, 4 * MIB, 1.0, "[####################] 100%  4.00/4.00 MiB  5.00 MiB/s  ETA 0:00"),
    ],
)
def test_format_progress(done: int, total: int | None, elapsed: float, expected: str) -> None:
    assert format_progress(done, total, elapsed) == expected


def test_format_size() -> None:
    assert [format_size(n) for n in (0, 1023, 1024, 1536, MIB, 5 * 1024**3)] == [
        "0 B",
        "1023 B",
        "1.00 KiB",
        "1.50 KiB",
        "1.00 MiB",
        "5.00 GiB",
    ]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_lines_mode_prints_each_quarter_once() -> None:
    out, err = io.StringIO(), io.StringIO()
    clock = FakeClock()
    bar = ProgressBar(Console(out, err), "sending x.bin", 4 * MIB, mode="auto", clock=clock)
    for step in range(1, 17):  # sixteen updates of 256 KiB, 0.1 s apart
        clock.now += 0.1
        bar.update(step * MIB // 4)
    bar.finish(4 * MIB)
    assert out.getvalue() == ""
    assert err.getvalue().splitlines() == [
        "sending x.bin  [#####---------------]  25%  1.00/4.00 MiB  2.50 MiB/s  ETA 0:02",
        "sending x.bin  [##########----------]  50%  2.00/4.00 MiB  2.50 MiB/s  ETA 0:01",
        "sending x.bin  [###############-----]  75%  3.00/4.00 MiB  2.50 MiB/s  ETA 0:01",
        "sending x.bin  [####################] 100%  4.00/4.00 MiB  2.50 MiB/s  ETA 0:00",
    ]


def test_progress_lines_mode_shows_where_a_failed_transfer_stopped() -> None:
    err = io.StringIO()
    clock = FakeClock()
    bar = ProgressBar(Console(io.StringIO(), err), "f", 4 * MIB, mode="lines", clock=clock)
    clock.now += 1
    bar.update(MIB // 2)
    bar.finish()
    bar.finish()  # once only
    assert err.getvalue() == "f  [##------------------]  12%  0.50/4.00 MiB  0.50 MiB/s  ETA 0:07\n"


def test_progress_bar_mode_redraws_one_terminal_line() -> None:
    out, err = io.StringIO(), Tty()
    clock = FakeClock()
    console = Console(out, err)
    bar = ProgressBar(console, "up", 2 * MIB, mode="auto", clock=clock)
    clock.now += 0.5
    bar.update(MIB)
    clock.now += 0.05
    bar.update(MIB + 1)  # within 0.1 s of the last redraw: not drawn
    console.print("a line")  # the bar is cleared, the line printed, the bar redrawn
    clock.now += 0.45
    bar.finish(2 * MIB)
    first = "up  [##########----------]  50%  1.00/2.00 MiB  2.00 MiB/s  ETA 0:01"
    last = "up  [####################] 100%  2.00/2.00 MiB  2.00 MiB/s  ETA 0:00"
    blank = "\r" + " " * len(first) + "\r"
    assert err.getvalue() == f"\r{first}{blank}{first}\r{last}\n"
    assert out.getvalue() == "a line\n"


def test_progress_none_mode_prints_nothing() -> None:
    err = io.StringIO()
    bar = ProgressBar(Console(io.StringIO(), err), "x", 10, mode="none")
    bar.update(10)
    bar.finish()
    assert err.getvalue() == ""


def test_console_survives_a_closed_stdout() -> None:
    class Closed(io.StringIO):
        def write(self, s: str) -> int:
            raise BrokenPipeError

    err = io.StringIO()
    console = Console(Closed(), err)
    console.print("lost")
    console.print("lost too")
    console.error("still here")
    assert err.getvalue() == "still here\n"


# -- configuration ------------------------------------------------------------------------------


def test_flags_win_over_the_environment() -> None:
    env = {
        "LIVEKIT_URL": "ws://10.0.0.1:1",
        "LIVEKIT_API_KEY": "env-key",
        "LIVEKIT_API_SECRET": "env-secret-0123456789abcdefghijklmnop",
    }
    creds = resolve_credentials(
        url="ws://127.0.0.1:7880",
        token=None,
        api_key=KEY,
        api_secret=SECRET,
        room="r",
        identity="alice",
        name="Alice",
        env=env,
        now=lambda: 1_700_000_000,
    )
    assert (creds.url, creds.room, creds.identity) == ("ws://127.0.0.1:7880", "r", "alice")
    claims = jwt.decode(creds.token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert claims["iss"] == KEY
    assert claims["name"] == "Alice"
    # The environment fills in what the flags leave out.
    creds = resolve_credentials(
        url=None,
        token=None,
        api_key=None,
        api_secret=None,
        room="r",
        identity="bob",
        name=None,
        env=env,
        now=lambda: 1_700_000_000,
    )
    assert creds.url == "ws://10.0.0.1:1"
    claims = jwt.decode(
        creds.token, env["LIVEKIT_API_SECRET"], algorithms=["HS256"], options={"verify_exp": False}
    )
    assert claims == {
        "iss": "env-key",
        "sub": "bob",
        "nbf": 1_700_000_000 - 10,
        "exp": 1_700_000_000 + 6 * 3600,
        "video": {"room": "r", "roomJoin": True},
    }
    assert "token" not in repr(creds) and creds.token not in repr(creds)


def test_a_given_token_is_used_as_is_and_names_room_and_identity() -> None:
    creds = resolve_credentials(
        url="wss://example.invalid",
        token=" tok.en.x ",
        api_key=None,
        api_secret=None,
        room=None,
        identity=None,
        name=None,
        env={"LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "s"},
    )
    assert (creds.token, creds.room, creds.identity) == ("tok.en.x", "", "")
    with pytest.raises(CliError) as info:
        resolve_credentials(
            url="ws://h",
            token="t.o.k",
            api_key=None,
            api_secret=None,
            room="r",
            identity="me",
            name=None,
            env={},
        )
    assert info.value.code == ExitCode.USAGE
    assert info.value.message == (
        "--room, --identity cannot be combined with --token (the token names them)"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": None}, "no server URL: give --url or set LIVEKIT_URL"),
        (
            {"api_secret": None},
            "missing credentials: give --token-file (or set LIVEKIT_TOKEN), or --api-key and "
            "--api-secret "
            "(or set LIVEKIT_API_KEY and LIVEKIT_API_SECRET)",
        ),
        ({"room": None}, "missing --room: the room to join"),
        ({"token": "  "}, "bad token: the token is empty"),
    ],
)
def test_missing_configuration(kwargs: dict[str, str | None], message: str) -> None:
    args: dict[str, str | None] = {
        "url": "ws://127.0.0.1:7880",
        "token": None,
        "api_key": KEY,
        "api_secret": SECRET,
        "room": "r",
        "identity": "me",
        "name": None,
    }
    args.update(kwargs)
    with pytest.raises(CliError) as info:
        resolve_credentials(env={}, **args)  # type: ignore[arg-type]
    assert (info.value.code, info.value.message) == (ExitCode.USAGE, message)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://h:1", "bad URL 'ftp://h:1': the scheme must be ws://, wss://, http:// or https://"),
        (
            "127.0.0.1:7880",
            "bad URL '127.0.0.1:7880': the scheme must be ws://, wss://, http:// or https://",
        ),
        ("ws://", "bad URL 'ws://': it names no host"),
        ("ws://h:99999", "bad URL 'ws://h:99999': Port out of range 0-65535"),
        # A query may carry a token: it is never echoed.
        (
            "ws://h:1/?access_token=SECRET",
            "bad URL 'ws://h:1/': give the server's address only (no query, fragment or user)",
        ),
        (
            "wss://user:SECRET@h",
            "bad URL 'wss://h': give the server's address only (no query, fragment or user)",
        ),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(CliError) as info:
        validate_url(url)
    assert (info.value.code, info.value.message) == (ExitCode.USAGE, message)


def test_good_urls() -> None:
    for url in ("ws://127.0.0.1:7880", "wss://x.livekit.cloud", "http://h/base", "HTTPS://h"):
        assert validate_url(url) == url


def test_grants() -> None:
    assert parse_grants("r", []) == VideoGrants(room="r", room_join=True)
    assert parse_grants("r", ["can_publish=false", "canSubscribe=yes", "room_admin"]) == (
        VideoGrants(
            room="r", room_join=True, can_publish=False, can_subscribe=True, room_admin=True
        )
    )
    with pytest.raises(CliError, match="unknown grant 'fly'"):
        parse_grants("r", ["fly"])
    with pytest.raises(CliError, match="bad grant value 'hidden=maybe'"):
        parse_grants("r", ["hidden=maybe"])


# -- ICE host addresses -----------------------------------------------------------------------


def test_host_addresses_default_to_a_local_servers_address() -> None:
    assert default_host_addresses("ws://127.0.0.1:7880") == ["127.0.0.1"]
    assert default_host_addresses("ws://localhost:7880") == ["127.0.0.1"]
    assert default_host_addresses("wss://[::1]:7880") == ["::1"]
    # 192.0.2.1 (TEST-NET-1) is assigned to no interface: a remote server, gather anywhere.
    assert default_host_addresses("ws://192.0.2.1:7880") is None
    # An address of this host or namespace (here: pretend) is local.
    assert default_host_addresses("ws://10.9.9.9", is_local=lambda a: a == "10.9.9.9") == [
        "10.9.9.9"
    ]
    # Names are resolved; local only if every address is.
    assert default_host_addresses(
        "wss://sfu.test", resolve=lambda h: ["127.0.0.1"], is_local=is_local_address
    ) == ["127.0.0.1"]
    assert (
        default_host_addresses(
            "wss://sfu.test",
            resolve=lambda h: ["127.0.0.1", "192.0.2.7"],
            is_local=is_local_address,
        )
        is None
    )
    assert default_host_addresses("wss://sfu.test", resolve=lambda h: []) is None


def test_is_local_address() -> None:
    assert is_local_address("127.0.0.1")
    assert is_local_address("127.0.0.53")
    assert not is_local_address("192.0.2.1")


def test_host_address_option() -> None:
    assert resolve_host_addresses(["10.0.0.2", "127.0.0.1"], "ws://h") == ["10.0.0.2", "127.0.0.1"]
    assert resolve_host_addresses(["any"], "ws://127.0.0.1") is None
    assert resolve_host_addresses(None, "ws://127.0.0.1:1") == ["127.0.0.1"]
    with pytest.raises(CliError, match="bad --host-address 'eth0'"):
        resolve_host_addresses(["eth0"], "ws://h")
    with pytest.raises(CliError, match="cannot be combined"):
        resolve_host_addresses(["any", "127.0.0.1"], "ws://h")


# -- received files and untrusted text ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\evil.bin", "evil.bin"),
        ("/abs/path/x.txt", "x.txt"),
        (".bashrc", "bashrc"),
        ("..", "stream-abc"),
        ("", "stream-abc"),
        ("dir/", "stream-abc"),
        ("a\x00b\x1b[31mc.txt", "ab[31mc.txt"),
        ('con:<>|?*".txt', "con.txt"),
        ("  spaced  ", "spaced"),
        ("naïve 😀.txt", "naïve 😀.txt"),
    ],
)
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name, "stream-abc") == expected


def test_safe_filename_bounds_the_length_and_keeps_the_extension() -> None:
    name = safe_filename("é" * 300 + ".tar.gz")
    assert len(name.encode()) <= 200
    assert name.endswith(".gz") and name.startswith("é")
    assert safe_filename("../..", "../..") == "file"


def test_create_unique_never_overwrites_nor_follows_links(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"old")
    outside = tmp_path / "outside"
    outside.write_bytes(b"keep")
    (tmp_path / "a-1.bin").symlink_to(outside)
    path, f = create_unique(tmp_path, "a.bin")
    with f:
        f.write(b"new")
    assert path == tmp_path / "a-2.bin"
    assert path.read_bytes() == b"new"
    assert (tmp_path / "a.bin").read_bytes() == b"old"
    assert outside.read_bytes() == b"keep"
    path, f = create_unique(tmp_path, "noext")
    f.close()
    assert path.name == "noext"
    path, f = create_unique(tmp_path, "noext")
    f.close()
    assert path.name == "noext-1"


def test_one_line() -> None:
    assert one_line("a\nb\r\tc\x1b[0m\u2028") == "a\\nb\\r\\tc\\x1b[0m\\u2028"
    assert one_line("👩\u200d👩\u200d👧 ok") == "👩\u200d👩\u200d👧 ok"
    assert one_line("x" * 10, limit=4) == "xxxx... (10 characters)"
    assert show_bytes("héllo".encode()) == "héllo"
    assert show_bytes(b"\xff\x00\x01") == "<3 bytes of binary data>"
    # Streamed prose keeps its lines and tabs, never terminal commands.
    assert printable("a\n\tb\x1b]0;title\x07\r") == "a\n\tb\\x1b]0;title\\x07\\r"


# -- RPC handlers --------------------------------------------------------------------------------


def test_load_handler_from_a_file(tmp_path: Path) -> None:
    source = tmp_path / "handlers.py"
    source.write_text(
        "def one(data):\n    return data.upper()\n\n"
        "async def two(data, room):\n    return room\n\n"
        "NOT_CALLABLE = 3\n"
    )
    fn, with_room = load_handler(f"{source}:one")
    assert (fn("hi"), with_room) == ("HI", False)
    fn, with_room = load_handler(f"{source}:two")
    assert with_room is True
    with pytest.raises(CliError) as info:
        load_handler(f"{source}:NOT_CALLABLE")
    assert (
        info.value.message == f"cannot load handler '{source}:NOT_CALLABLE': no function "
        "'NOT_CALLABLE'"
    )
    with pytest.raises(CliError, match="no such file"):
        load_handler(f"{tmp_path / 'missing.py'}:one")
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(CliError, match=r"RuntimeError: boom"):
        load_handler(f"{broken}:f")


def test_load_handler_from_a_module() -> None:
    fn, with_room = load_handler("os.path:join")
    assert fn is os.path.join and with_room is True  # join(a, *p) takes two or more
    with pytest.raises(CliError, match="bad --handler 'nocolon'"):
        load_handler("nocolon")
    with pytest.raises(CliError, match="ModuleNotFoundError"):
        load_handler("no_such_module_xyz:f")


# -- main(): exit codes and one-line errors ------------------------------------------------


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--help")
    assert code == 0 and err == ""
    assert "Exit codes:" in out
    assert "  4    unknown participant" in out
    assert "LIVEKIT_URL" in out


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        ((), "lkproto: error: the following arguments are required: COMMAND (see --help)"),
        (
            ("rpc", "call", "--to", "x"),
            "lkproto rpc call: error: the following arguments are required: --method (see --help)",
        ),
        (
            ("rpc", "call", "--to", "x", "--method", "m", "--timeout", "0"),
            "lkproto rpc call: error: argument --timeout: must be a positive number of seconds: "
            "'0' (see --help)",
        ),
        (
            ("fly",),
            "lkproto: error: argument COMMAND: invalid choice: 'fly' (choose from 'token', "
            "'join', 'listen', 'rpc', 'send-text', 'send-file', 'publish-audio', 'record') "
            "(see --help)",
        ),
    ],
)
def test_usage_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], line: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out, err) == (2, "", line + "\n")


def test_missing_credentials_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "rpc", "call", "--to", "x", "--method", "m")
    assert (code, out, err) == (2, "", "lkproto: no server URL: give --url or set LIVEKIT_URL\n")
    code, out, err = run(
        capsys, "join", "--url", "ws://127.0.0.1:9", "--room", "r", "--api-key", "k"
    )
    assert (code, out) == (2, "")
    assert err == (
        "lkproto: missing credentials: give --token-file (or set LIVEKIT_TOKEN), or --api-key "
        "and --api-secret (or set LIVEKIT_API_KEY and LIVEKIT_API_SECRET)\n"
    )


def test_bad_url_exits_2_without_echoing_the_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2VjcmV0LXNpZ25hdHVyZQ"
    code, out, err = run(capsys, "send-text", "hi", "--url", "ftp://127.0.0.1:9", "--token", token)
    assert (code, out) == (2, "")
    assert err == (
        "lkproto: bad URL 'ftp://127.0.0.1:9': the scheme must be ws://, wss://, http:// or "
        "https://\n"
    )
    monkeypatch.setenv("LIVEKIT_URL", f"ws://127.0.0.1:9/?access_token={token}")
    code, out, err = run(capsys, "send-text", "hi", "--token", token)
    assert code == 2
    assert token not in err and "access_token" not in err
    assert err.count("\n") == 1


def test_missing_file_exits_2_before_connecting(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Port 9 on loopback: nothing is ever sent there, because the file check comes first.
    missing = tmp_path / "nope.bin"
    code, out, err = run(
        capsys, "send-file", str(missing), "--url", "ws://127.0.0.1:9", "--token", "a.b.c"
    )
    assert (code, out, err) == (2, "", f"lkproto: no such file: {missing}\n")
    code, out, err = run(
        capsys, "send-file", str(tmp_path), "--url", "ws://127.0.0.1:9", "--token", "a.b.c"
    )
    assert (code, out, err) == (2, "", f"lkproto: not a regular file: {tmp_path}\n")


def test_bad_handler_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(
        capsys,
        "rpc",
        "serve",
        "--handler",
        f"{tmp_path}/none.py:f",
        "--url",
        "ws://127.0.0.1:9",
        "--token",
        "a.b.c",
    )
    assert (code, out, err) == (2, "", f"lkproto: --handler: no such file: {tmp_path}/none.py\n")


def test_a_handler_needs_a_method_on_join(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "join", "--handler", "os.path:join", "--url", "ws://127.0.0.1:9", "--token", "a.b.c"
    )
    assert (code, out, err) == (
        2,
        "",
        "lkproto: --handler needs --method NAME (the method it answers)\n",
    )


def test_token_prints_a_token_with_the_expected_claims(
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = int(time.time())
    code, out, err = run(
        capsys,
        "token",
        "--api-key",
        KEY,
        "--api-secret",
        SECRET,
        "--identity",
        "alice",
        "--room",
        "demo",
        "--name",
        "Alice",
        "--attribute",
        "role=tester",
        "--grant",
        "can_publish=false",
        "--ttl",
        "600",
    )
    after = int(time.time())
    assert (code, err) == (0, "")
    token = out.strip()
    assert out == token + "\n"
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert before - 10 <= claims.pop("nbf") <= after - 10
    assert claims.pop("exp") - 600 in range(before, after + 1)
    assert claims == {
        "iss": KEY,
        "sub": "alice",
        "name": "Alice",
        "attributes": {"role": "tester"},
        "video": {"room": "demo", "roomJoin": True, "canPublish": False},
    }


def test_token_from_the_environment_and_its_errors(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run(capsys, "token", "--identity", "a", "--room", "r")
    assert (code, out) == (2, "")
    assert err == (
        "lkproto: missing credentials: give --api-key and --api-secret "
        "(or set LIVEKIT_API_KEY and LIVEKIT_API_SECRET)\n"
    )
    monkeypatch.setenv("LIVEKIT_API_KEY", "env-key")
    monkeypatch.setenv("LIVEKIT_API_SECRET", SECRET)
    code, out, err = run(capsys, "token", "--identity", "a", "--room", "r")
    assert (code, err) == (0, "")
    assert jwt.decode(out.strip(), SECRET, algorithms=["HS256"])["iss"] == "env-key"
    code, out, err = run(capsys, "token", "--identity", "a", "--room", "r", "--grant", "x")
    assert code == 2 and err.startswith("lkproto: unknown grant 'x' (known: ")
    code, out, err = run(capsys, "token", "--identity", "a", "--room", "r", "--attribute", "k")
    assert (code, err) == (2, "lkproto: bad --attribute 'k': use KEY=VALUE\n")
    assert SECRET not in err


# -- issue 19: the first hour ------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from lkproto._version import __version__

    assert run(capsys, "--version") == (0, f"lkproto {__version__}\n", "")


def test_python_m_lkproto_is_the_command_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib
    import runpy

    monkeypatch.setattr("sys.argv", ["lkproto", "--version"])
    with pytest.raises(SystemExit) as info:
        runpy.run_module("lkproto", run_name="__main__")
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("lkproto ")
    importlib.import_module("lkproto.__main__")  # imported, not run: it does nothing


def test_an_empty_url_is_refused_not_replaced(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIVEKIT_URL", "ws://127.0.0.1:9")
    code, out, err = run(capsys, "send-text", "hi", "--url", "", "--token", "a.b.c")
    assert (code, out, err) == (2, "", "lkproto: bad --url: it is empty\n")


@pytest.mark.parametrize(
    ("method", "line"),
    [
        ("", "lkproto: bad --method: it is empty\n"),
        ("m" * 65, "lkproto: bad --method: over 64 bytes of UTF-8\n"),
    ],
)
def test_rpc_call_checks_the_method_before_connecting(
    capsys: pytest.CaptureFixture[str], method: str, line: str
) -> None:
    # Port 9 on loopback: nothing is sent there, the check comes first.
    argv = ("rpc", "call", "--to", "x", "--method", method, "--url", "ws://127.0.0.1:9")
    assert run(capsys, *argv, "--token", "a.b.c") == (2, "", line)


def _ctx(*argv: str) -> object:
    from lkproto.transports.cli import build_parser
    from lkproto.transports.cli._context import Context

    return Context(build_parser().parse_args(argv), Console(io.StringIO(), io.StringIO()))


def test_a_token_from_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lkproto.transports.cli._session import given_token

    base = ("join", "--url", "ws://127.0.0.1:9")
    path = tmp_path / "token"
    path.write_text("from.the.file\n")
    assert given_token(_ctx(*base, "--token-file", str(path))) == "from.the.file"  # type: ignore[arg-type]
    assert given_token(_ctx(*base)) is None  # type: ignore[arg-type]
    monkeypatch.setenv("LIVEKIT_TOKEN", "from.the.env")
    assert given_token(_ctx(*base)) == "from.the.env"  # type: ignore[arg-type]
    assert given_token(_ctx(*base, "--token", "a.b.c")) == "a.b.c"  # type: ignore[arg-type]
    # Asking for a minted token (a room, an identity, a key) leaves LIVEKIT_TOKEN alone.
    assert given_token(_ctx(*base, "--room", "r")) is None  # type: ignore[arg-type]
    code, out, err = run(capsys, *base, "--token-file", str(tmp_path / "missing"))
    assert (code, out) == (2, "")
    assert (
        err
        == f"lkproto: cannot read --token-file {tmp_path / 'missing'}: No such file or directory\n"
    )


def test_peer_chosen_strings_are_escaped() -> None:
    from lkproto.transports.cli._session import who

    hostile = "evil\x1b[31m\nparticipant joined admin\r"
    assert who(hostile) == "evil\\x1b[31m\\nparticipant joined admin\\r"
    assert "\n" not in who(hostile) and "\x1b" not in who(hostile)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.timeout(30)
async def test_plain_handlers_run_on_worker_threads_concurrently() -> None:
    # Four calls of a blocking handler that only returns once all four run at once: on the
    # event loop (before the fix) the first would block the others, and the barrier breaks.
    import threading

    import anyio

    from lkproto.rpc import RpcInvocationData
    from lkproto.transports.cli._commands import run_handler

    barrier = threading.Barrier(4, timeout=10)
    loop_thread = threading.get_ident()
    threads: list[int] = []

    def handler(data: RpcInvocationData) -> str:
        threads.append(threading.get_ident())
        barrier.wait()
        return data.payload

    results: list[object] = []

    async def one(n: int) -> None:
        data = RpcInvocationData(
            request_id=str(n),
            caller_identity="c",
            method="m",
            payload=str(n),
            response_timeout=10.0,
        )
        results.append(await run_handler(handler, data, None, with_room=False))

    async with anyio.create_task_group() as tg:
        for n in range(4):
            tg.start_soon(one, n)
    assert sorted(results) == ["0", "1", "2", "3"]  # type: ignore[type-var]
    assert loop_thread not in threads


def test_importing_the_command_line_loads_no_webrtc() -> None:
    # Issue 19 item 5: the console script's own imports are light (a Ctrl-C during them would
    # print a traceback); the adapters and aiortc load inside main(), where it is caught.
    import subprocess
    import sys

    probe = (
        "import sys, lkproto.transports.cli; "
        "print(sorted({'aiortc', 'av', 'anyio'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout) == (0, "[]\n"), out.stderr
