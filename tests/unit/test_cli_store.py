"""The ``routeplane store`` command and store URLs, on the embedded store in a temp dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from routeplane.cli.main import main
from routeplane.model.errors import InvalidRequest
from routeplane.store import open_store

pytestmark = pytest.mark.unit


def test_put_get_list_delete(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite://{tmp_path / 'sub' / 'store.db'}"  # the directory is created
    assert main(["--store", url, "store", "put", "/a/x", '{"n": 1}']) == 0
    assert main(["--store", url, "store", "get", "/a/x"]) == 0
    assert main(["--store", url, "store", "ls", "/a/"]) == 0
    assert main(["--store", url, "store", "del", "/a/", "--prefix"]) == 0
    assert main(["--store", url, "store", "get", "/a/x"]) == 1
    out = capsys.readouterr().out
    assert '/a/x = {"n": 1}  (rev 2, v1)' in out
    assert "1 key(s) at revision 2" in out
    assert "deleted 1 key(s) at revision 3" in out
    assert "/a/x: not found" in out


def test_bad_input_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite://{tmp_path / 'store.db'}"
    assert main(["--store", url, "store", "put", "/a", "{not json"]) == 1
    assert main(["--store", url, "store", "put", "no-slash", "1"]) == 1
    err = capsys.readouterr().err
    assert "routeplane: value is not JSON" in err
    assert "routeplane: key 'no-slash' is malformed" in err


@pytest.mark.parametrize(
    "url", ["postgres://x", "sqlite://", "etcd://h:1?timeout=soon", "sqlite:///x.db?history=0"]
)
def test_unusable_store_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidRequest):
        open_store(url)
