"""The data directory written by ``python -m portal_sim generate`` and read by the portal API.

This module is the contract between the generator and everything that serves or checks its
output (the portal API, tests, the linkage export). The layout, documented in ``docs/portal-sim.md``::

    DIR/manifest.json          format, seed, municipality, API key, period, counts, procedure catalogue
    DIR/applications.jsonl     one ApplicationRecord per line, sorted by (arrived_at, receipt_number)
    DIR/residents.jsonl        one ResidentRecord per line (the synthetic truth: portal + register)
    DIR/packages/<受付番号>.zip  the packages, byte for byte as the portal hands them out
    DIR/pki/                   the test PKI (TestPKI.save layout: jpki-roots/, portal-roots/, …)
    DIR/crl/*.crl              one current CRL (DER) per JPKI root generation

A directory is complete exactly when ``manifest.json`` exists: :class:`DataDirWriter` builds the
whole tree under a temporary sibling and renames it into place last, and :class:`DataDir` refuses a
directory without a manifest. Every file is written atomically (temp file, fsync, ``os.replace``).
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

from portal_sim.errors import DataDirError, InvalidReceiptNumber, UnknownReceiptNumber
from signature.verify import TrustConfig

__all__ = [
    "APPLICATIONS_FILE",
    "CRL_DIR",
    "FORMAT_VERSION",
    "JST",
    "MANIFEST_FILE",
    "MUNICIPALITY_CODE",
    "PACKAGES_DIR",
    "PKI_DIR",
    "RECEIPT_NUMBER_RE",
    "RESIDENTS_FILE",
    "ApplicationKind",
    "ApplicationRecord",
    "Counts",
    "DataDir",
    "DataDirWriter",
    "Defect",
    "HouseholdMember",
    "Manifest",
    "ProcedureEntry",
    "ResidentRecord",
    "UserCert",
    "atomic_write",
    "check_receipt_number",
]

FORMAT_VERSION = 1
#: 全国地方公共団体コード of 港区 (13103 and its check digit).
MUNICIPALITY_CODE = "131032"
MANIFEST_FILE = "manifest.json"
APPLICATIONS_FILE = "applications.jsonl"
RESIDENTS_FILE = "residents.jsonl"
PACKAGES_DIR = "packages"
PKI_DIR = "pki"
CRL_DIR = "crl"
JST = timezone(timedelta(hours=9), "JST")
#: A 受付番号: the arrival date (JST) and a 10-digit portal-wide sequence number.
RECEIPT_NUMBER_RE = re.compile(r"[0-9]{8}-[0-9]{10}", re.ASCII)


class ApplicationKind(enum.StrEnum):
    """申請種別."""

    NEW = "新規申請"
    REAPPLICATION = "再申請"
    CORRECTION = "補正"
    WITHDRAWAL = "取下げ"


class Defect(enum.StrEnum):
    """How a package was deliberately spoiled (``None`` in a record: a sound package)."""

    #: A byte changed after the applicant signed (→ FAILED HASH_FAILURE or SIG_CRYPTO_FAILURE).
    BAD_SIGNATURE = "bad_signature"
    #: Signed with a signing certificate that the CRL lists as revoked before arrival (→ REVOKED).
    REVOKED_CERTIFICATE = "revoked_certificate"
    #: Correctly signed, but one attachment is the EICAR anti-virus test file: the malware scan must catch it.
    EICAR_ATTACHMENT = "eicar_attachment"
    #: The ZIP is truncated (→ NOT_A_ZIP or ZIP_CORRUPT).
    MALFORMED_ZIP = "malformed_zip"


def check_receipt_number(value: str) -> str:
    """``value`` if it is a plain 受付番号, else :class:`InvalidReceiptNumber` (no path can get through)."""
    if not isinstance(value, str) or not RECEIPT_NUMBER_RE.fullmatch(value):
        raise InvalidReceiptNumber(str(value))
    return value


# -- records -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcedureEntry:
    """One procedure of the ward's catalogue, as listed in the manifest."""

    procedure_id: str
    procedure_name: str
    department: str
    department_code: str
    form_id: str

    def to_json(self) -> dict[str, Any]:
        return {
            "procedure_id": self.procedure_id,
            "procedure_name": self.procedure_name,
            "department": self.department,
            "department_code": self.department_code,
            "form_id": self.form_id,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ProcedureEntry:
        return cls(
            procedure_id=_str(obj, "procedure_id"),
            procedure_name=_str(obj, "procedure_name"),
            department=_str(obj, "department"),
            department_code=_str(obj, "department_code"),
            form_id=_str(obj, "form_id"),
        )


@dataclass(frozen=True, slots=True)
class Counts:
    """What a generation produced (informational; the JSONL files are the truth)."""

    residents: int
    applications: int
    defective: int
    signing_certificates: int
    revoked_signing_certificates: int
    by_kind: Mapping[str, int] = field(default_factory=dict)
    by_defect: Mapping[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "residents": self.residents,
            "applications": self.applications,
            "defective": self.defective,
            "signing_certificates": self.signing_certificates,
            "revoked_signing_certificates": self.revoked_signing_certificates,
            "by_kind": dict(self.by_kind),
            "by_defect": dict(self.by_defect),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Counts:
        # Only "applications" is part of the minimal contract; the rest is informational.
        return cls(
            residents=_int(obj, "residents", 0),
            applications=_int(obj, "applications"),
            defective=_int(obj, "defective", 0),
            signing_certificates=_int(obj, "signing_certificates", 0),
            revoked_signing_certificates=_int(obj, "revoked_signing_certificates", 0),
            by_kind=_int_map(obj, "by_kind"),
            by_defect=_int_map(obj, "by_defect"),
        )


@dataclass(frozen=True, slots=True)
class Manifest:
    """``manifest.json``.

    ``generated_for`` is the start of the simulated period (00:00 JST of ``--start``); the period
    is ``days`` days long. ``api_key`` is derived from the seed (32 lowercase hex digits): the
    portal API accepts it for ``municipality_code``.
    """

    format: int
    seed: int
    municipality_code: str
    api_key: str
    generated_for: datetime
    counts: Counts
    days: int | None = None
    defect_rate: float | None = None
    procedures: tuple[ProcedureEntry, ...] = ()

    @property
    def period_end(self) -> datetime | None:
        """The end (exclusive) of the simulated period, when the manifest says how long it is."""
        return None if self.days is None else self.generated_for + timedelta(days=self.days)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "seed": self.seed,
            "municipality_code": self.municipality_code,
            "api_key": self.api_key,
            "generated_for": self.generated_for.isoformat(),
            "counts": self.counts.to_json(),
            "days": self.days,
            "defect_rate": self.defect_rate,
            "procedures": [p.to_json() for p in self.procedures],
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Manifest:
        fmt = obj.get("format")
        if fmt != FORMAT_VERSION:
            raise DataDirError(f"{MANIFEST_FILE}: format {fmt!r} is not {FORMAT_VERSION}")
        procedures = obj.get("procedures", [])
        if not isinstance(procedures, list):
            raise DataDirError(f"{MANIFEST_FILE}: procedures is not a list")
        return cls(
            format=FORMAT_VERSION,
            seed=_int(obj, "seed"),
            municipality_code=_str(obj, "municipality_code"),
            api_key=_str(obj, "api_key"),
            generated_for=_start(obj, "generated_for"),
            counts=Counts.from_json(_mapping(obj, "counts")),
            days=None if obj.get("days") is None else _int(obj, "days"),
            defect_rate=None if obj.get("defect_rate") is None else _float(obj, "defect_rate"),
            procedures=tuple(ProcedureEntry.from_json(_as_mapping(p, "procedures[]")) for p in procedures),
        )


@dataclass(frozen=True, slots=True)
class ApplicationRecord:
    """One line of ``applications.jsonl``: one submission as the portal recorded it.

    ``first_receipt_number`` is the 初回受付番号 of the chain a 再申請 / 補正 / 取下げ belongs to
    (``None`` for a 新規申請). ``package`` is the path relative to the data directory;
    ``sha256``/``size`` describe its bytes. ``defect`` says whether and how the package was spoiled
    on purpose.
    """

    receipt_number: str
    arrived_at: datetime
    procedure_id: str
    procedure_name: str
    department: str
    kind: ApplicationKind
    first_receipt_number: str | None
    defect: Defect | None
    package: str
    sha256: str
    size: int
    resident_id: str

    def to_json(self) -> dict[str, Any]:
        return {
            "receipt_number": self.receipt_number,
            "arrived_at": self.arrived_at.isoformat(),
            "procedure_id": self.procedure_id,
            "procedure_name": self.procedure_name,
            "department": self.department,
            "kind": self.kind.value,
            "first_receipt_number": self.first_receipt_number,
            "defect": None if self.defect is None else self.defect.value,
            "package": self.package,
            "sha256": self.sha256,
            "size": self.size,
            "resident_id": self.resident_id,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ApplicationRecord:
        first = obj.get("first_receipt_number")
        defect = obj.get("defect")
        try:
            kind = ApplicationKind(_str(obj, "kind"))
            defect_value = None if defect is None else Defect(defect)
        except ValueError as exc:
            raise DataDirError(f"{APPLICATIONS_FILE}: unknown kind or defect") from exc
        return cls(
            receipt_number=check_receipt_number(_str(obj, "receipt_number")),
            arrived_at=_datetime(obj, "arrived_at"),
            procedure_id=_str(obj, "procedure_id"),
            procedure_name=_str(obj, "procedure_name"),
            department=_str(obj, "department"),
            kind=kind,
            first_receipt_number=None if first is None else check_receipt_number(_str(obj, "first_receipt_number")),
            defect=defect_value,
            package=_str(obj, "package"),
            sha256=_str(obj, "sha256"),
            size=_int(obj, "size"),
            resident_id=_str(obj, "resident_id"),
        )


@dataclass(frozen=True, slots=True)
class UserCert:
    """A 利用者証明用電子証明書 as the register knows it: serial (uppercase hex) and validity.

    ``revoked_at`` is set when the certificate was revoked (lost card, or superseded by a renewal)."""

    serial: str
    valid_from: date
    valid_to: date
    revoked_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "valid_from": self.valid_from.isoformat(),
            "valid_to": self.valid_to.isoformat(),
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> UserCert:
        return cls(
            serial=_str(obj, "serial"),
            valid_from=_date(obj, "valid_from"),
            valid_to=_date(obj, "valid_to"),
            revoked_at=None if obj.get("revoked_at") is None else _datetime(obj, "revoked_at"),
        )


@dataclass(frozen=True, slots=True)
class HouseholdMember:
    """A member of the resident's household named in forms (spouse, children): no certificate."""

    relation: str
    name: str
    name_kana: str
    sex: str
    birth_date: date
    my_number: str

    def to_json(self) -> dict[str, Any]:
        return {
            "relation": self.relation,
            "name": self.name,
            "name_kana": self.name_kana,
            "sex": self.sex,
            "birth_date": self.birth_date.isoformat(),
            "my_number": self.my_number,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> HouseholdMember:
        return cls(
            relation=_str(obj, "relation"),
            name=_str(obj, "name"),
            name_kana=_str(obj, "name_kana"),
            sex=_str(obj, "sex"),
            birth_date=_date(obj, "birth_date"),
            my_number=_str(obj, "my_number"),
        )


@dataclass(frozen=True, slots=True)
class ResidentRecord:
    """One line of ``residents.jsonl``: a synthetic resident as the portal and the register know them.

    ``user_certs[i]`` and ``signing_cert_serials[i]`` belong to the same card generation (issued
    together); the last one is the newest. Signing-certificate serials are uppercase hex, as the
    verifier reports them.
    """

    resident_id: str
    atena_number: str
    my_number: str
    name: str
    name_kana: str
    sex: str
    birth_date: date
    address: str
    name_alt: str | None
    address_alt: str | None
    user_certs: tuple[UserCert, ...]
    signing_cert_serials: tuple[str, ...]
    household: tuple[HouseholdMember, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "resident_id": self.resident_id,
            "atena_number": self.atena_number,
            "my_number": self.my_number,
            "name": self.name,
            "name_kana": self.name_kana,
            "sex": self.sex,
            "birth_date": self.birth_date.isoformat(),
            "address": self.address,
            "name_alt": self.name_alt,
            "address_alt": self.address_alt,
            "user_certs": [c.to_json() for c in self.user_certs],
            "signing_cert_serials": list(self.signing_cert_serials),
            "household": [m.to_json() for m in self.household],
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ResidentRecord:
        certs = obj.get("user_certs")
        serials = obj.get("signing_cert_serials")
        household = obj.get("household", [])
        if not isinstance(certs, list) or not isinstance(serials, list) or not isinstance(household, list):
            raise DataDirError(f"{RESIDENTS_FILE}: user_certs, signing_cert_serials and household must be lists")
        return cls(
            resident_id=_str(obj, "resident_id"),
            atena_number=_str(obj, "atena_number"),
            my_number=_str(obj, "my_number"),
            name=_str(obj, "name"),
            name_kana=_str(obj, "name_kana"),
            sex=_str(obj, "sex"),
            birth_date=_date(obj, "birth_date"),
            address=_str(obj, "address"),
            name_alt=_opt_str(obj, "name_alt"),
            address_alt=_opt_str(obj, "address_alt"),
            user_certs=tuple(UserCert.from_json(_as_mapping(c, "user_certs[]")) for c in certs),
            signing_cert_serials=tuple(_as_str(s, "signing_cert_serials[]") for s in serials),
            household=tuple(HouseholdMember.from_json(_as_mapping(m, "household[]")) for m in household),
        )


# -- reading -------------------------------------------------------------------------------------


class DataDir:
    """A complete data directory, opened for reading.

    Raises :class:`DataDirError` when ``path`` has no readable ``manifest.json`` of this format.
    The records are read once, on first use, and cached (a data directory never changes after
    :class:`DataDirWriter` committed it).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.manifest = Manifest.from_json(_read_json(self.path / MANIFEST_FILE))
        self._applications: tuple[ApplicationRecord, ...] | None = None
        self._by_receipt: dict[str, ApplicationRecord] | None = None
        self._residents: tuple[ResidentRecord, ...] | None = None

    # paths
    @property
    def pki_dir(self) -> Path:
        return self.path / PKI_DIR

    @property
    def jpki_roots_dir(self) -> Path:
        """The JPKI trust anchors (every root generation), one PEM each."""
        return self.pki_dir / "jpki-roots"

    @property
    def portal_roots_dir(self) -> Path:
        """The trust anchor of the portal's 到達情報 signature."""
        return self.pki_dir / "portal-roots"

    @property
    def intermediates_file(self) -> Path:
        """The JPKI-TEST intermediate CA (no generated certificate uses it; kept for completeness)."""
        return self.pki_dir / "jpki-intermediate.pem"

    @property
    def crl_dir(self) -> Path:
        return self.path / CRL_DIR

    @property
    def packages_dir(self) -> Path:
        return self.path / PACKAGES_DIR

    def trust_config(self) -> TrustConfig:
        """Trust anchors and CRLs for :func:`signature.verify.verify_package` on these packages."""
        return TrustConfig.load(
            jpki_roots=[self.jpki_roots_dir], portal_roots=[self.portal_roots_dir], crls=[self.crl_dir]
        )

    # records
    def applications(self) -> list[ApplicationRecord]:
        """Every application, sorted by (arrived_at, receipt_number)."""
        if self._applications is None:
            self._applications = tuple(
                ApplicationRecord.from_json(obj) for obj in _read_jsonl(self.path / APPLICATIONS_FILE)
            )
        return list(self._applications)

    def application(self, receipt_number: str) -> ApplicationRecord:
        """The record of one 受付番号; :class:`UnknownReceiptNumber` if there is none."""
        check_receipt_number(receipt_number)
        if self._by_receipt is None:
            self._by_receipt = {a.receipt_number: a for a in self.applications()}
        try:
            return self._by_receipt[receipt_number]
        except KeyError:
            raise UnknownReceiptNumber(receipt_number) from None

    def residents(self) -> list[ResidentRecord]:
        if self._residents is None:
            self._residents = tuple(ResidentRecord.from_json(obj) for obj in _read_jsonl(self.path / RESIDENTS_FILE))
        return list(self._residents)

    # packages
    def package_path(self, receipt_number: str) -> Path:
        """Where the package of ``receipt_number`` is; the name is checked before any path is built."""
        return self.packages_dir / f"{check_receipt_number(receipt_number)}.zip"

    def package_bytes(self, receipt_number: str) -> bytes:
        """The package's bytes. :class:`InvalidReceiptNumber` for anything that is not a plain
        受付番号 (``../x``, ``a/b``…), :class:`UnknownReceiptNumber` when there is no such package."""
        path = self.package_path(receipt_number)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise UnknownReceiptNumber(receipt_number) from None
        except OSError as exc:
            raise DataDirError(f"cannot read the package of {receipt_number}: {exc.strerror}") from exc


# -- writing -------------------------------------------------------------------------------------


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part:
    a temporary file in the same directory, flushed and fsync-ed, then ``os.replace``.

    The directory entry itself is made durable by :meth:`DataDirWriter.commit` (one directory
    fsync per directory rather than one per file).
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _jsonl(records: Iterable[Mapping[str, Any]]) -> bytes:
    # ensure_ascii=False keeps the Japanese readable; the key order is the records' own (fixed).
    return "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in records).encode()


class DataDirWriter:
    """Builds a data directory under a temporary sibling of ``path`` and renames it into place.

    ``path`` must not exist or be an empty directory. Use as a context manager: on an exception
    the partial tree is removed and ``path`` is left as it was.
    """

    def __init__(self, path: Path | str) -> None:
        self.final = Path(path)
        if self.final.exists() and (not self.final.is_dir() or any(self.final.iterdir())):
            raise DataDirError(f"{self.final} exists and is not an empty directory")
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix=f".{self.final.name}.partial-", dir=self.final.parent))
        (self.root / PACKAGES_DIR).mkdir()
        (self.root / CRL_DIR).mkdir()
        self._committed = False

    def __enter__(self) -> DataDirWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self._committed:
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def pki_dir(self) -> Path:
        return self.root / PKI_DIR

    def write_package(self, receipt_number: str, data: bytes) -> str:
        """Store one package; returns its path relative to the data directory."""
        name = f"{check_receipt_number(receipt_number)}.zip"
        atomic_write(self.root / PACKAGES_DIR / name, data)
        return f"{PACKAGES_DIR}/{name}"

    def write_crl(self, file_name: str, der: bytes) -> None:
        if "/" in file_name or not file_name.endswith(".crl") or file_name.startswith("."):
            raise DataDirError(f"bad CRL file name {file_name!r}")
        atomic_write(self.root / CRL_DIR / file_name, der)

    def write_applications(self, records: Iterable[ApplicationRecord]) -> None:
        ordered = sorted(records, key=lambda r: (r.arrived_at, r.receipt_number))
        atomic_write(self.root / APPLICATIONS_FILE, _jsonl(r.to_json() for r in ordered), mode=0o600)

    def write_residents(self, records: Iterable[ResidentRecord]) -> None:
        atomic_write(self.root / RESIDENTS_FILE, _jsonl(r.to_json() for r in records), mode=0o600)

    def commit(self, manifest: Manifest) -> DataDir:
        """Write the manifest, make the tree durable and rename it to the final path."""
        atomic_write(
            self.root / MANIFEST_FILE,
            (json.dumps(manifest.to_json(), ensure_ascii=False, indent=2) + "\n").encode(),
        )
        _fsync_tree(self.root)
        os.replace(self.root, self.final)  # rename(2) may replace an empty directory
        _fsync_dir(self.final.parent)
        self._committed = True
        return DataDir(self.final)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """fsync the directories (their entries); files written by :func:`atomic_write` are already
    durable, files written by others (TestPKI.save) are fsync-ed here."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            if not dirpath.startswith(str(root / PACKAGES_DIR)):
                fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        _fsync_dir(Path(dirpath))


# -- JSON helpers (every malformed value becomes DataDirError) -------------------------------------


def _read_json(path: Path) -> Mapping[str, Any]:
    try:
        obj = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise DataDirError(f"{path}: missing (not a complete portal_sim data directory)") from None
    except (OSError, ValueError) as exc:
        raise DataDirError(f"{path}: unreadable or not JSON") from exc
    return _as_mapping(obj, path.name)


def _read_jsonl(path: Path) -> list[Mapping[str, Any]]:
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise DataDirError(f"{path}: unreadable") from exc
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise DataDirError(f"{path.name} line {number}: not JSON") from exc
        out.append(_as_mapping(obj, f"{path.name} line {number}"))
    return out


def _as_mapping(obj: object, where: str) -> Mapping[str, Any]:
    if not isinstance(obj, dict):
        raise DataDirError(f"{where}: expected a JSON object")
    return obj


def _as_str(obj: object, where: str) -> str:
    if not isinstance(obj, str):
        raise DataDirError(f"{where}: expected a string")
    return obj


def _mapping(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    return _as_mapping(obj.get(key), key)


def _str(obj: Mapping[str, Any], key: str) -> str:
    return _as_str(obj.get(key), key)


def _opt_str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return None if value is None else _as_str(value, key)


def _int(obj: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = obj.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise DataDirError(f"{key}: expected an integer")
    return value


def _float(obj: Mapping[str, Any], key: str) -> float:
    value = obj.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise DataDirError(f"{key}: expected a number")
    return float(value)


def _int_map(obj: Mapping[str, Any], key: str) -> dict[str, int]:
    m = _as_mapping(obj.get(key, {}), key)
    return {k: _int(m, k) for k in m}


def _datetime(obj: Mapping[str, Any], key: str) -> datetime:
    try:
        value = datetime.fromisoformat(_str(obj, key))
    except ValueError as exc:
        raise DataDirError(f"{key}: not an ISO 8601 date-time") from exc
    if value.utcoffset() is None:
        raise DataDirError(f"{key}: date-time without a UTC offset")
    return value


def _start(obj: Mapping[str, Any], key: str) -> datetime:
    """A date-time with offset, or a plain date meaning 00:00 JST of that day."""
    text = _str(obj, key)
    if len(text) == 10:
        return datetime.combine(_date(obj, key), time(0, 0), JST)
    return _datetime(obj, key)


def _date(obj: Mapping[str, Any], key: str) -> date:
    try:
        return date.fromisoformat(_str(obj, key))
    except ValueError as exc:
        raise DataDirError(f"{key}: not an ISO 8601 date") from exc
