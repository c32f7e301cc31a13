"""``python -m dmz_relay push PATH…``: the LGWAN terminal's client of the push channel.

Uploads each ZIP (files, or the ``*.zip`` files of a folder, not recursive) as a raw body, shows
progress, and deletes a local file **only** after the relay answered with the intake's receipt (201,
or 200 for a repeat) *for exactly the bytes of that file* (the receipt's SHA-256 is compared).
A refused file stays where it is and the reason is printed; a file the relay could not take now (503,
connection error) stays too and is retried up to ``retries`` times, waiting ``Retry-After``. A TLS
handshake either side refuses (the relay does not accept this terminal's certificate, or this terminal
does not trust the relay's) is not retried: waiting does not heal it; the file is kept and the line
says which side refused and why (the TLS alert's name).
Nothing is written anywhere else: the file is read into memory and sent from there.
"""

from __future__ import annotations

import enum
import hashlib
import os
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import httpx
from tqdm import tqdm  # type: ignore[import-untyped]  # tqdm ships no type information

from tlsreload.alerting import tls_refusal

__all__ = ["FileResult", "PushSummary", "collect_files", "push_files"]


class FileOutcome(enum.StrEnum):
    DELIVERED = "delivered"  # 201: stored by the intake, local file deleted
    DUPLICATE = "duplicate"  # 200: the intake had it already, local file deleted
    REFUSED = "refused"  # 4xx: kept, reason printed
    FAILED = "failed"  # 503 / transport error after the retries: kept
    MISCONFIGURED = "misconfigured"  # a TLS handshake one side refused: kept, not retried


@dataclass(frozen=True)
class FileResult:
    path: Path
    outcome: FileOutcome
    code: str | None = None
    message: str = ""
    receipt_number: str | None = None


@dataclass
class PushSummary:
    results: list[FileResult] = field(default_factory=list)

    def count(self, outcome: FileOutcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)

    @property
    def ok(self) -> bool:
        return all(r.outcome in (FileOutcome.DELIVERED, FileOutcome.DUPLICATE) for r in self.results)

    def text(self) -> str:
        return (f"{len(self.results)} file(s): {self.count(FileOutcome.DELIVERED)} delivered, "
                f"{self.count(FileOutcome.DUPLICATE)} already delivered, {self.count(FileOutcome.REFUSED)} refused, "
                f"{self.count(FileOutcome.FAILED)} to retry later"
                + (f", {n} not sent (TLS settings)" if (n := self.count(FileOutcome.MISCONFIGURED)) else ""))


def collect_files(paths: Iterable[Path]) -> list[Path]:
    """The files to send: each file given, and the ``*.zip`` files (any case) directly in each folder."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".zip"))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path} does not exist")
    return list(dict.fromkeys(files))


def _delete(path: Path) -> None:
    """Remove ``path`` and make the removal durable (fsync of the folder)."""
    path.unlink()
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        error = response.json()["error"]
        return str(error.get("code", f"HTTP_{response.status_code}")), str(
            error.get("message_ja") or error.get("message") or "")
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"HTTP_{response.status_code}", ""


def _handshake_refused(error: ssl.SSLError) -> str:
    """The line's message for a refused TLS handshake: which side refused, and OpenSSL's reason."""
    reason = error.reason or type(error).__name__
    if isinstance(error, ssl.SSLCertVerificationError):
        return (f"この端末が連携サーバの証明書を信頼できません（{reason}）。--url と --ca を確認してください"
                " / this terminal does not trust the relay's certificate: check --url and --ca")
    if "ALERT" in reason and any(word in reason for word in ("CERTIFICATE", "UNKNOWN_CA", "HANDSHAKE_FAILURE")):
        # the relay's alert about this terminal's certificate (HANDSHAKE_FAILURE: none sent, under TLS 1.2)
        return (f"連携サーバがこの端末の証明書を受け入れません（{reason}）。--cert と --key を確認してください"
                " / the relay refused this terminal's certificate: check --cert and --key")
    return (f"TLS の接続に失敗しました（{reason}）。--url と TLS の設定を確認してください"
            " / the TLS handshake failed: check --url and the TLS settings")


def push_one(http: httpx.Client, path: Path, *, retries: int, sleep: Callable[[float], None]) -> FileResult:
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    attempt = 0
    while True:
        attempt += 1
        try:
            response = http.post("/api/v1/packages", content=data, headers={"Content-Type": "application/zip"})
        except httpx.TransportError as exc:
            refused = tls_refusal(exc)  # a refused handshake does not heal by waiting: no retries
            if refused is not None:
                return FileResult(path, FileOutcome.MISCONFIGURED, "TLS_HANDSHAKE", _handshake_refused(refused))
            if attempt > retries:
                return FileResult(path, FileOutcome.FAILED, "CONNECT_ERROR", type(exc).__name__)
            sleep(min(2.0 ** attempt, 60.0))
            continue
        if response.status_code in (200, 201):
            try:
                receipt = response.json()
                matches = receipt["sha256"] == digest
            except (ValueError, KeyError, TypeError):
                matches = False
            if not matches:
                # Never delete on an answer that is not a receipt for these bytes.
                return FileResult(path, FileOutcome.FAILED, "BAD_RECEIPT", "the answer is not a receipt for this file")
            _delete(path)
            outcome = FileOutcome.DELIVERED if response.status_code == 201 else FileOutcome.DUPLICATE
            return FileResult(path, outcome, receipt_number=receipt.get("receipt_number"))
        code, message = _error_of(response)
        if response.status_code == 503 and attempt <= retries:
            retry_after = response.headers.get("retry-after", "")
            sleep(float(retry_after) if retry_after.isdigit() else 5.0)
            continue
        if 400 <= response.status_code < 500:
            return FileResult(path, FileOutcome.REFUSED, code, message)
        return FileResult(path, FileOutcome.FAILED, code, message)


def push_files(http: httpx.Client, files: Sequence[Path], *, out: TextIO, retries: int = 3,
               sleep: Callable[[float], None], progress: bool = True) -> PushSummary:
    """Send ``files`` one by one through ``http`` (base URL = the relay); report each on ``out``."""
    summary = PushSummary()
    bar = tqdm(total=len(files), unit="file", disable=not progress, file=out)
    try:
        for path in files:
            bar.set_description(path.name)
            result = push_one(http, path, retries=retries, sleep=sleep)
            summary.results.append(result)
            if result.outcome in (FileOutcome.DELIVERED, FileOutcome.DUPLICATE):
                line = f"OK       {path}  受付番号 {result.receipt_number or '-'}  ({result.outcome.value}; deleted)"
            elif result.outcome is FileOutcome.REFUSED:
                line = f"REFUSED  {path}  {result.code}: {result.message}  (kept)"
            elif result.outcome is FileOutcome.MISCONFIGURED:
                line = f"TLS      {path}  {result.code}: {result.message}  (kept; send again once fixed)"
            else:
                line = f"RETRY    {path}  {result.code}: {result.message}  (kept; send again later)"
            bar.write(line, file=out)
            bar.update(1)
    finally:
        bar.close()
    out.write(summary.text() + "\n")
    return summary
