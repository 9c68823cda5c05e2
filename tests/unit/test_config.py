"""The daemons' config files and the command line they lie under (``cli.config``):
every option is a key, the command line wins over the file, the file over the
environment; a bad key or value is exit 2 naming the key; global options go before or
after the subcommand."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from routeplane.cli import config
from routeplane.cli.main import build_parser, main, parse
from routeplane.store import DEFAULT_STORE_URL

pytestmark = pytest.mark.unit


def _file(tmp_path: Path, text: str, name: str = "agent.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_the_file_gives_what_the_command_line_does_not(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        'host = "node1"\nbgp_peer = ["192.168.8.1"]\nno_bfd = true\nas_number = 65000\n'
        'metrics_listen = "127.0.0.1:9101"\nstore = "sqlite:///tmp/from-file.db"\n',
    )
    args = parse(["agent", "--config", path])
    assert (args.host, args.bgp_peer, args.no_bfd, args.as_number) == (
        "node1",
        ["192.168.8.1"],
        True,
        65000,
    )
    assert args.metrics_listen == ("127.0.0.1", 9101)
    assert args.store == "sqlite:///tmp/from-file.db"
    assert args.reflector is False  # neither: the option's default


def test_the_command_line_wins_and_replaces_a_list(tmp_path: Path) -> None:
    path = _file(tmp_path, 'host = "node1"\nbgp_peer = ["192.168.8.1"]\nas_number = 65000\n')
    args = parse(["agent", "--config", path, "--host", "node2", "--bgp-peer", "10.0.0.1"])
    assert (args.host, args.bgp_peer, args.as_number) == ("node2", ["10.0.0.1"], 65000)


def test_store_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _file(tmp_path, 'store = "sqlite:///file.db"\n', "controller.toml")
    monkeypatch.setenv("ROUTEPLANE_STORE", "sqlite:///env.db")
    assert parse(["controller", "--config", path]).store == "sqlite:///file.db"
    assert parse(["--store", "etcd://a:1", "controller", "--config", path]).store == "etcd://a:1"
    assert parse(["controller", "--config", path, "--store", "etcd://b:1"]).store == "etcd://b:1"
    assert parse(["controller"]).store == "sqlite:///env.db"
    monkeypatch.delenv("ROUTEPLANE_STORE")
    assert parse(["controller"]).store == DEFAULT_STORE_URL


def test_global_options_before_or_after_the_subcommand() -> None:
    """The README's ``routeplane api [--listen …] [--store URL]``, as written."""
    after = parse(["api", "--listen", "0.0.0.0:9696", "--store", "etcd://10.0.0.5:2379"])
    before = parse(["--store", "etcd://10.0.0.5:2379", "api", "--listen", "0.0.0.0:9696"])
    assert after.store == before.store == "etcd://10.0.0.5:2379"
    assert after.listen == before.listen == ("0.0.0.0", 9696)
    assert parse(["store", "ls", "/", "--store", "sqlite:///x.db"]).store == "sqlite:///x.db"


def test_the_default_path_is_read_only_when_it_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config, "CONFIG_DIR", tmp_path)
    assert parse(["controller"]).name is None
    _file(tmp_path, 'name = "ctl-a"\nlease_ttl = 5\n', "controller.toml")
    args = parse(["controller"])
    assert (args.name, args.lease_ttl) == ("ctl-a", 5)


def test_a_required_option_may_come_from_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert parse(["agent", "--config", _file(tmp_path, 'host = "n1"\n')]).host == "n1"
    with pytest.raises(SystemExit) as exc:
        parse(["agent", "--config", _file(tmp_path, 'netns = "x"\n')])
    assert exc.value.code == 2
    assert "the following arguments are required: --host" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ('hots = "n1"\n', "hots", "unknown key (did you mean 'host'?)"),
        ('bgp-peer = ["1.2.3.4"]\n', "bgp-peer", "did you mean 'bgp_peer'?"),
        ('host = "n1"\nas_number = "many"\n', "as_number", "must be a number, not 'many'"),
        ('host = "n1"\nas_number = true\n', "as_number", "must be a number, not a boolean"),
        ('host = "n1"\nno_bfd = "yes"\n', "no_bfd", "must be true or false, not 'yes'"),
        ("host = 7\n", "host", "must be a string, not 7"),
        ('host = "n1"\nbgp_peer = [[1]]\n', "bgp_peer", "must be a string, not an array"),
        ('host = "n1"\nmetrics_listen = "9100"\n', "metrics_listen", "takes HOST:PORT"),
        ('host = "n1"\nmetadata_port = {a = 1}\n', "metadata_port", "not a table"),
    ],
)
def test_a_bad_key_or_value_is_exit_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key: str, reason: str
) -> None:
    path = _file(tmp_path, text)
    assert main(["agent", "--config", path]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"routeplane agent: config {path}: key {key!r}: ")
    assert reason in err
    assert main(["config", "check", path]) == 2
    assert f"key {key!r}" in capsys.readouterr().err


def test_a_missing_or_broken_file_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["controller", "--config", str(tmp_path / "none.toml")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["controller", "--config", _file(tmp_path, "name = \n")]) == 2
    assert "not TOML" in capsys.readouterr().err


def test_the_api_file_holds_the_identity_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = 'listen = "0.0.0.0:9696"\nadmin_token = "t"\n[[users]]\nname = "demo"\npassword = "p"\nproject = "demo"\n'
    assert main(["config", "check", _file(tmp_path, good, "api.toml")]) == 0
    assert "ok for routeplane api (3 key(s))" in capsys.readouterr().out
    no_password = '[[users]]\nname = "demo"\nproject = "demo"\n'
    assert main(["config", "check", _file(tmp_path, no_password, "api.toml")]) == 2
    assert "key 'users': an entry lacks 'password'" in capsys.readouterr().err
    assert main(["config", "check", _file(tmp_path, "users = 3\n", "api.toml")]) == 2
    assert "key 'users': has the wrong type" in capsys.readouterr().err


def test_check_needs_to_know_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _file(tmp_path, 'name = "x"\n', "routeplane.toml")
    assert main(["config", "check", path]) == 2
    assert "which command" in capsys.readouterr().err
    assert main(["config", "check", path, "--for", "controller"]) == 0


@pytest.mark.parametrize("command", config.CONFIGURED)
def test_every_option_is_a_key_and_the_listing_reads_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """``config keys`` lists every option; with each key that has a default uncommented,
    the file is valid for the command."""
    assert main(["config", "keys", command]) == 0
    listing = capsys.readouterr().out
    keys = {line[2:].split(" =")[0] for line in listing.splitlines() if " =" in line}
    sub = config.subcommands(build_parser())[command]
    flags = {a.dest for a in sub._actions if a.option_strings} - {"help", "config"}
    assert keys == flags
    filled = "\n".join(
        line[2:] for line in listing.splitlines() if " = " in line and not line.endswith("= ")
    )
    tomllib.loads(filled)
    assert main(["config", "check", _file(tmp_path, filled, f"{command}.toml")]) == 0
