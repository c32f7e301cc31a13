"""The relay's own reason codes (besides signature's :class:`~signature.report.ReasonCode`), with
English text for operators and Japanese for the LGWAN terminal's user. Codes are stable and safe
for logs, tombstones and other zones."""

from __future__ import annotations

from signature.reasons import describe
from signature.report import ReasonCode

__all__ = [
    "BUSY",
    "INTAKE_UNAVAILABLE",
    "INTERNAL_ERROR",
    "MALWARE_FOUND",
    "MALWARE_UNSCANNABLE",
    "SCANNER_UNAVAILABLE",
    "SHUTTING_DOWN",
    "describe_code",
]

MALWARE_FOUND = "MALWARE_FOUND"
MALWARE_UNSCANNABLE = "MALWARE_UNSCANNABLE"
SCANNER_UNAVAILABLE = "SCANNER_UNAVAILABLE"
SHUTTING_DOWN = "SHUTTING_DOWN"
INTERNAL_ERROR = "INTERNAL_ERROR"
INTAKE_UNAVAILABLE = "INTAKE_UNAVAILABLE"
BUSY = "BUSY"

_RELAY_REASONS = {
    MALWARE_FOUND: ("Malware was found; the package was forwarded with the files flagged",
                    "マルウェアを検知しました（該当ファイルに印を付けて送信しました）"),
    MALWARE_UNSCANNABLE: ("A file could not be scanned (too large); it was forwarded flagged",
                          "ファイルをスキャンできませんでした（印を付けて送信しました）"),
    SCANNER_UNAVAILABLE: ("The malware scanner is unavailable; try again later",
                          "ウイルス検査が利用できません。後で再送してください"),
    SHUTTING_DOWN: ("The relay is shutting down; try again later", "連携サーバが停止中です。後で再送してください"),
    INTERNAL_ERROR: ("Internal error of the relay; try again later",
                     "連携サーバの内部エラーです。後で再送してください"),
    INTAKE_UNAVAILABLE: ("The intake cannot be reached; try again later",
                         "申請管理システムに接続できません。後で再送してください"),
    "INTAKE_BUSY": ("The intake is storing the same package right now; try again later",
                    "同じ申請データを申請管理システムが処理中です。後で再送してください"),
    BUSY: ("The relay is busy; try again later", "連携サーバが混雑しています。後で再送してください"),
    "UNSUPPORTED_MEDIA_TYPE": ("The body must be a raw ZIP (Content-Type: application/zip)",
                               "本文はZIP形式（application/zip）で送信してください"),
    "BAD_CONTENT_LENGTH": ("Content-Length is not a number", "Content-Lengthが不正です"),
    "TRUNCATED_BODY": ("The body is shorter than its Content-Length", "送信データが途中で切れています"),
    "DOWNLOAD_MISMATCH": ("The download differs from the portal's list (size or SHA-256)",
                          "ダウンロードしたデータが一覧の内容と一致しません"),
}


def describe_code(code: str) -> tuple[str, str]:
    """(English, Japanese) text for a relay or signature reason code; generic for the intake's codes."""
    if code in _RELAY_REASONS:
        return _RELAY_REASONS[code]
    if code in ReasonCode.__members__:
        return describe(ReasonCode(code))
    if code.startswith("HTTP_5"):
        return _RELAY_REASONS[INTAKE_UNAVAILABLE]
    return (f"The intake refused the package ({code})", f"申請管理システムが受け付けませんでした（{code}）")
