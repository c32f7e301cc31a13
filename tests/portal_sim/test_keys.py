"""Keys derived from the seed: deterministic, separated by label, and what TestPKI signs with."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from portal_sim.keys import KeyDeriver, derive_rsa_key_der, key_stream
from signature.testing.pki import KEY_PURPOSES, TestPKI
from tests.conftest import NOW


def public_der(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_the_byte_stream_depends_on_seed_and_label_only() -> None:
    a = key_stream(1, "card/R000001/0")
    assert a(10) + a(100) == key_stream(1, "card/R000001/0")(110)
    assert key_stream(1, "card/R000001/0")(64) != key_stream(2, "card/R000001/0")(64)
    assert key_stream(1, "card/R000001/0")(64) != key_stream(1, "card/R000001/1")(64)


def test_a_derived_key_is_the_same_rsa_2048_key_every_time() -> None:
    first = derive_rsa_key_der(5, "ca/portal-root")
    assert derive_rsa_key_der(5, "ca/portal-root") == first
    key = serialization.load_der_private_key(first, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048
    assert key.private_numbers().public_numbers.e == 65537


def test_the_cache_returns_what_derivation_gives(tmp_path: Path) -> None:
    fresh = KeyDeriver(9, cache_dir=tmp_path)
    assert fresh.derive_all(["x", "y", "x"]) == 2
    (entry, *_) = sorted(tmp_path.iterdir())
    assert entry.stat().st_mode & 0o077 == 0  # private keys: owner only
    cached = KeyDeriver(9, cache_dir=tmp_path)
    assert cached.derive_all(["x", "y"]) == 0
    assert public_der(cached.key("x")) == public_der(fresh.key("x"))
    assert public_der(cached.key("x")) != public_der(cached.key("y"))
    assert public_der(KeyDeriver(9).key("y")) == public_der(fresh.key("y"))  # no cache: same key


@pytest.fixture(scope="module")
def fixed_keys() -> dict[str, rsa.RSAPrivateKey]:
    return {purpose: rsa.generate_private_key(public_exponent=65537, key_size=2048) for purpose in KEY_PURPOSES}


def test_testpki_with_a_key_source_is_byte_identical(fixed_keys: dict[str, rsa.RSAPrivateKey]) -> None:
    asked: list[str] = []

    def source(purpose: str) -> rsa.RSAPrivateKey:
        asked.append(purpose)
        return fixed_keys[purpose]

    one = TestPKI.generate(now=NOW, seed=3, key_source=source)
    two = TestPKI.generate(now=NOW, seed=3, key_source=source)
    assert asked == [*KEY_PURPOSES, *KEY_PURPOSES]
    def certs(pki: TestPKI) -> list[bytes]:
        return [i.cert_der() for i in (*pki.jpki_roots, pki.jpki_intermediate, pki.portal_root, pki.portal_server)]

    assert certs(one) == certs(two)
    assert public_der(one.portal_server.rsa_key) == public_der(fixed_keys["portal-server"])
    assert public_der(one.jpki_roots[0].rsa_key) == public_der(fixed_keys["jpki-root-g1"])


def test_testpki_without_a_key_source_still_makes_fresh_keys() -> None:
    one, two = TestPKI.generate(now=NOW, seed=3), TestPKI.generate(now=NOW, seed=3)
    assert public_der(one.portal_root.rsa_key) != public_der(two.portal_root.rsa_key)
