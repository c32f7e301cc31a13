"""Benchmark of :class:`signature.revocation.RevocationStore` with a JPKI-sized CRL.

JPKI CRLs hold 10^5–10^6 entries, and pyhanko-certvalidator re-processes them on every validation
(6.5 validations/s at 100 000 entries, docs/pitfalls.md). This script checks that the indexed store
meets its budget: load a 1 000 000-entry CRL in < 10 s and < 300 MB, and answer ≥ 100 000 lookups/s.

Two issuers of the same CRL content (``--issuer``, default both, one after the other):

* ``configured`` — the CRL is signed by the configured anchor: verified while it is loaded;
* ``carried`` — the CRL is signed by a signing CA under that anchor that is configured nowhere (it
  reaches the verifier only in packages): loaded and indexed without a verdict, verified on the
  first ``check()`` given that CA as the issuer of a validated path ("first check" below), once.

Usage::

    python bench/bench_revocation.py [--entries 1000000] [--issuer both|configured|carried]
                                     [--cache-dir .bench-cache/] [--json out.json]

Building 10^6 entries with ``x509.CertificateRevocationListBuilder`` is slow, so the
revokedCertificates sequence is DER-encoded by hand here, wrapped in asn1crypto's ``TbsCertList``
(which keeps pre-encoded contents as they are) and signed with cryptography. The CA and the CRL are
cached under ``--cache-dir``; everything random comes from ``random.Random(--seed)``, so a cached
CRL and the lookup serials regenerated from the seed always agree.

Memory is measured in a fresh child process (``multiprocessing`` "spawn"), so that building the CRL
does not pollute the numbers: "peak RSS increase" is ``resource.getrusage(RUSAGE_SELF).ru_maxrss``
after loading minus the same value just before; "retained RSS increase" is the resident set size
from ``/proc/self/statm`` after loading (and a ``gc.collect()``) minus the value before.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import gc
import json
import multiprocessing
import os
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

from asn1crypto import core as asn1_core
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

# The script is run as `python bench/bench_revocation.py`, which puts bench/ (not the repository
# root) on sys.path; the package is not installed into the virtualenv.
_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from signature.revocation import RevocationStatus, RevocationStore, _lookup  # noqa: E402

THIS_UPDATE = dt.datetime(2025, 4, 1, 0, 0, 0, tzinfo=dt.UTC)
NEXT_UPDATE = THIS_UPDATE + dt.timedelta(days=2)
AT = THIS_UPDATE + dt.timedelta(hours=1)
# Serials like a real CA's (RFC 5280 allows up to 20 octets); 127-bit random values make the
# Python ints in the index as large as a production CRL's would be, so memory is not understated.
SERIAL_BITS = 127
CHECK_POOL = 10_000


def _rng(seed: int) -> random.Random:
    return random.Random(seed)


# --- minimal DER encoding of revokedCertificates ----------------------------------------------


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes((tag,)) + _der_len(len(value)) + value


def _der_int(n: int) -> bytes:
    # Positive INTEGER: minimal big-endian two's complement (a leading 0 when the top bit is set).
    return _tlv(0x02, n.to_bytes(n.bit_length() // 8 + 1, "big"))


def _der_time(epoch: int) -> bytes:
    t = dt.datetime.fromtimestamp(epoch, dt.UTC)
    if 1950 <= t.year < 2050:  # RFC 5280 §4.1.2.5: UTCTime until 2049, GeneralizedTime after
        return _tlv(0x17, t.strftime("%y%m%d%H%M%SZ").encode("ascii"))
    return _tlv(0x18, t.strftime("%Y%m%d%H%M%SZ").encode("ascii"))


# crlEntryExtensions with one reasonCode (2.5.29.21) = keyCompromise(1) / superseded(4) /
# cessationOfOperation(5): real CRLs carry reason codes on most entries, and the loader must skip them.
_REASON_EXTS = {
    reason: _tlv(0x30, _tlv(0x30, bytes.fromhex("0603551d15") + _tlv(0x04, _tlv(0x0A, bytes((reason,))))))
    for reason in (1, 4, 5)
}


def _revoked_entries(rng: random.Random, n: int) -> tuple[list[int], list[int]]:
    serials: set[int] = set()
    while len(serials) < n:
        serials.add(rng.getrandbits(SERIAL_BITS) | 1)
    ordered = sorted(serials)
    rng.shuffle(ordered)
    start = int((THIS_UPDATE - dt.timedelta(days=5 * 365)).timestamp())
    end = int(THIS_UPDATE.timestamp())
    times = [rng.randrange(start, end) for _ in range(n)]
    return ordered, times


def _encode_revoked(rng: random.Random, serials: list[int], times: list[int]) -> bytes:
    parts = []
    reasons = (None, 1, 4, 5)
    for serial, when in zip(serials, times, strict=True):
        reason = reasons[rng.randrange(4)]
        body = _der_int(serial) + _der_time(when)
        if reason is not None:
            body += _REASON_EXTS[reason]
        parts.append(_tlv(0x30, body))
    return _tlv(0x30, b"".join(parts))


# --- CA and CRL ---------------------------------------------------------------------------------


def _load_or_make_ca(
    cache: Path, issuer: tuple[rsa.RSAPrivateKey, x509.Certificate] | None = None
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """The bench root (``issuer`` None), or the signing CA under it that nothing configures."""
    stem = "bench-ca" if issuer is None else "bench-signing-ca"
    key_path, cert_path = cache / f"{stem}-key.pem", cache / f"{stem}.pem"
    if key_path.exists() and cert_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key, x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JPKI-TEST"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Bench CA" if issuer is None else "Bench signing CA"),
    ])
    issuer_key, issuer_name = (key, name) if issuer is None else (issuer[0], issuer[1].subject)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(1 if issuer is None else 2)
        .not_valid_before(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2040, 1, 1, tzinfo=dt.UTC))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[0].public_key()), critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def _build_crl(key: rsa.RSAPrivateKey, ca: x509.Certificate, revoked_der: bytes) -> bytes:
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    algorithm = asn1_x509.SignedDigestAlgorithm({"algorithm": "sha256_rsa", "parameters": asn1_core.Null()})
    tbs = asn1_crl.TbsCertList({
        "version": "v2",
        "signature": algorithm,
        "issuer": asn1_x509.Name.load(ca.subject.public_bytes()),
        "this_update": asn1_x509.Time({"utc_time": THIS_UPDATE}),
        "next_update": asn1_x509.Time({"utc_time": NEXT_UPDATE}),
        # .load() keeps the hand-made bytes as they are: asn1crypto re-emits unmodified contents.
        "revoked_certificates": asn1_crl.RevokedCertificates.load(revoked_der),
        "crl_extensions": [
            {"extn_id": "crl_number", "critical": False, "extn_value": 1},
            {"extn_id": "authority_key_identifier", "critical": False,
             "extn_value": {"key_identifier": ski}},
        ],
    })
    tbs_der = tbs.dump()
    signature = key.sign(tbs_der, padding.PKCS1v15(), hashes.SHA256())
    return bytes(asn1_crl.CertificateList({
        "tbs_cert_list": asn1_crl.TbsCertList.load(tbs_der),
        "signature_algorithm": algorithm,
        "signature": signature,
    }).dump())


def _prepare(entries: int, seed: int, cache: Path, mode: str) -> tuple[Path, Path, Path, float | None]:
    """(CRL, its issuer's certificate, the anchor's certificate, build seconds or None if cached)."""
    cache.mkdir(parents=True, exist_ok=True)
    root_key, root = _load_or_make_ca(cache)
    key, ca = (root_key, root) if mode == "configured" else _load_or_make_ca(cache, (root_key, root))
    stem = "bench-ca" if mode == "configured" else "bench-signing-ca"
    fp = ca.fingerprint(hashes.SHA256()).hex()[:16]
    crl_path = cache / f"crl-{entries}-seed{seed}-{fp}.der"
    build_s = None
    if not crl_path.exists():
        started = time.perf_counter()
        rng = _rng(seed)
        serials, times = _revoked_entries(rng, entries)
        der = _build_crl(key, ca, _encode_revoked(rng, serials, times))
        tmp = crl_path.with_suffix(".tmp")
        tmp.write_bytes(der)
        os.replace(tmp, crl_path)
        build_s = time.perf_counter() - started
    return crl_path, cache / f"{stem}.pem", cache / "bench-ca.pem", build_s


# --- measurement (in a fresh process) -----------------------------------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _leaf_pool(ca: x509.Certificate, serials: list[int]) -> list[x509.Certificate]:
    """Certificates issued (by name and key identifier) by ``ca`` with the given serials.

    check() never verifies the leaf's own signature (the caller has validated the path), so one
    signed template is re-serialised with other serials and a dummy signature: much faster than
    signing thousands of certificates.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    template = asn1_x509.Certificate.load(
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench leaf")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2029, 1, 1, tzinfo=dt.UTC))
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    pool = []
    for serial in serials:
        tbs = template["tbs_certificate"].copy()
        tbs["serial_number"] = serial
        cert = asn1_x509.Certificate({
            "tbs_certificate": tbs,
            "signature_algorithm": template["signature_algorithm"],
            "signature_value": b"\x00" * 256,
        })
        pool.append(x509.load_der_x509_certificate(cert.dump()))
    return pool


def _measure(crl_path: str, ca_path: str, anchor_path: str, entries: int, seed: int, lookups: int,
             ) -> dict[str, Any]:
    ca = x509.load_pem_x509_certificate(Path(ca_path).read_bytes())
    anchor = x509.load_pem_x509_certificate(Path(anchor_path).read_bytes())
    carried = ca != anchor
    gc.collect()
    rss0, peak0 = _rss_bytes(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started, cpu = time.perf_counter(), time.process_time()
    store = RevocationStore([Path(crl_path)], [anchor])  # only the anchor is configured
    load_s, load_cpu = time.perf_counter() - started, time.process_time() - cpu
    peak1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    gc.collect()
    rss1 = _rss_bytes()
    status = store.status()
    assert (status.crl_count, status.awaiting_issuer) == (1, 1 if carried else 0), status

    # The first check with the CRL's issuer: for a carried CA, this is where its signature is
    # verified (on the digest taken at load time), once; for a configured one, a dictionary hit.
    first_leaf = _leaf_pool(ca, [1])[0]
    started = time.perf_counter()
    first = store.check(first_leaf, ca, AT)
    first_check_s = time.perf_counter() - started
    assert first.status is RevocationStatus.GOOD, first
    assert store.status().awaiting_issuer == 0

    # Same seed, same sequence: the serials listed in the CRL, in the order they were written.
    rng = _rng(seed)
    listed, _times = _revoked_entries(rng, entries)
    listed_set = set(listed)
    look = _rng(seed + 1)

    def miss() -> int:
        while True:
            s = look.getrandbits(SERIAL_BITS) | 1
            if s not in listed_set:
                return s

    # 1) The index alone: `lookups` random serials over the whole CRL, half of them listed.
    entry = store._resolve(store._index, ca).entry
    assert entry is not None, "the benchmark CRL is not usable for its CA"
    queries = [listed[look.randrange(entries)] if i % 2 == 0 else miss() for i in range(lookups)]
    started, cpu = time.perf_counter(), time.process_time()
    revoked = sum(1 for s in queries if _lookup(entry, s, None, AT).status is RevocationStatus.REVOKED)
    index_s, index_cpu = time.perf_counter() - started, time.process_time() - cpu
    assert revoked == lookups // 2 + lookups % 2, revoked

    # 2) The public check(), end to end: `lookups` calls over a pool of distinct certificate
    #    objects (half listed); includes the issuer match and the CRL selection.
    pool = _leaf_pool(ca, [listed[look.randrange(entries)] for _ in range(CHECK_POOL // 2)]
                      + [miss() for _ in range(CHECK_POOL // 2)])
    picks = [pool[look.randrange(CHECK_POOL)] for _ in range(lookups)]
    for cert in pool:  # first use parses the extensions; the caller's path validation did that
        store.check(cert, ca, AT)
    started, cpu = time.perf_counter(), time.process_time()
    for cert in picks:
        store.check(cert, ca, AT)
    check_s, check_cpu = time.perf_counter() - started, time.process_time() - cpu

    return {
        "issuer": "carried" if carried else "configured",
        "entries": entries,
        "crl_bytes": Path(crl_path).stat().st_size,
        "first_check_ms": round(first_check_s * 1000, 2),
        "load_seconds": round(load_s, 3),
        "load_cpu_seconds": round(load_cpu, 3),
        "peak_rss_increase_mb": round((peak1 - peak0) / 2**20, 1),
        "retained_rss_increase_mb": round((rss1 - rss0) / 2**20, 1),
        "memory_method": "resource.getrusage ru_maxrss delta (peak) and /proc/self/statm (retained), "
                         "fresh spawned process",
        "index_lookups": lookups,
        "index_lookups_per_s": round(lookups / index_s),
        "index_lookups_per_cpu_s": round(lookups / index_cpu),
        "check_calls": lookups,
        "check_pool_certificates": CHECK_POOL,
        "check_calls_per_s": round(lookups / check_s),
        "check_calls_per_cpu_s": round(lookups / check_cpu),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20250401)
    parser.add_argument("--cache-dir", type=Path, default=Path(".bench-cache"))
    parser.add_argument("--issuer", choices=["both", "configured", "carried"], default="both")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)

    results = []
    for mode in (["configured", "carried"] if args.issuer == "both" else [args.issuer]):
        crl_path, ca_path, anchor_path, build_s = _prepare(args.entries, args.seed, args.cache_dir, mode)
        # A fresh process per mode (and after building): memory figures start from a clean slate.
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            result = pool.submit(_measure, str(crl_path), str(ca_path), str(anchor_path), args.entries, args.seed,
                                 args.lookups).result()
        result["crl_build_seconds"] = None if build_s is None else round(build_s, 1)
        _print(result, build_s)
        results.append(result)
    if args.json is not None:
        args.json.write_text(json.dumps(results if len(results) > 1 else results[0], indent=2) + "\n",
                             encoding="utf-8")
    return 0


def _print(r: dict[str, Any], build_s: float | None) -> None:
    load = "load + index (verified on first use)" if r["issuer"] == "carried" else "load + verify + index"
    rows = [
        ("CRL issuer", "a signing CA configured nowhere (carried in packages)" if r["issuer"] == "carried"
         else "the configured anchor"),
        ("CRL entries", f"{r['entries']:,}"),
        ("CRL size (DER)", f"{r['crl_bytes'] / 2**20:.1f} MiB"),
        ("CRL build (not cached)", "cached" if build_s is None else f"{build_s:.1f} s"),
        (load, f"{r['load_seconds']:.2f} s wall, {r['load_cpu_seconds']:.2f} s CPU   (budget < 10 s)"),
        ("first check()", f"{r['first_check_ms']:.2f} ms"
         + ("   (verifies the CRL's signature on the stored digest)" if r["issuer"] == "carried" else "")),
        ("peak RSS increase", f"{r['peak_rss_increase_mb']:.0f} MiB   (budget < 300 MB; ru_maxrss)"),
        ("retained RSS increase", f"{r['retained_rss_increase_mb']:.0f} MiB   (/proc/self/statm)"),
        ("index lookups/s",
         f"{r['index_lookups_per_s']:,} wall, {r['index_lookups_per_cpu_s']:,} CPU   "
         f"({r['index_lookups']:,} random serials, half listed; budget ≥ 100 000/s)"),
        ("check() calls/s",
         f"{r['check_calls_per_s']:,} wall, {r['check_calls_per_cpu_s']:,} CPU   "
         f"({r['check_calls']:,} calls over {CHECK_POOL:,} certificates)"),
        ("load average (1 min)", f"{r['load_average_1min']}   (other processes share the CPUs)"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print()


if __name__ == "__main__":
    raise SystemExit(main())
