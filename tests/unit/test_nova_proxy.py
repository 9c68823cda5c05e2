"""Unit: what proxy mode tells nova-metadata — the four headers Neutron's metadata proxy
sends, the signature Nova recomputes (HMAC-SHA256 of the instance id, hex; the value here
is OpenSSL's), and which nova-metadata URLs are accepted."""

from __future__ import annotations

import pytest

from routeplane.agent.nova_proxy import NovaProxy, proxy_headers, sign

pytestmark = pytest.mark.unit

# printf inst-1 | openssl dgst -sha256 -hmac s3cret
SIGNED = "0423ac5ab426fe85654f33cf6ebc38df4ce8ffe5bf842017ce9f21a5bd299eae"


def test_the_signature_is_hmac_sha256_of_the_instance_id() -> None:
    assert sign(b"s3cret", "inst-1") == SIGNED
    assert sign(b"other", "inst-1") != SIGNED


def test_the_four_headers() -> None:
    assert proxy_headers(b"s3cret", "inst-1", "proj-1", "10.28.0.13") == {
        "X-Forwarded-For": "10.28.0.13",
        "X-Instance-ID": "inst-1",
        "X-Tenant-ID": "proj-1",
        "X-Instance-ID-Signature": SIGNED,
    }


def test_urls_and_secrets() -> None:
    proxy = NovaProxy("http://127.0.0.1:8775/", b"s")
    assert (proxy.host, proxy.port, proxy.prefix) == ("127.0.0.1", 8775, "")
    assert NovaProxy("http://nova-api", b"s").port == 8775
    for url in ("https://nova:8775", "nova:8775", "http://"):
        with pytest.raises(ValueError, match="must be http"):
            NovaProxy(url, b"s")
    with pytest.raises(ValueError, match="secret is empty"):
        NovaProxy("http://nova", b"")
