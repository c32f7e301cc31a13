"""Human-readable reasons, Japanese for staff and English for operators, per :class:`ReasonCode`."""

from __future__ import annotations

from signature.report import ReasonCode

__all__ = ["describe"]

_REASONS: dict[ReasonCode, tuple[str, str]] = {
    ReasonCode.EMPTY_INPUT: ("The package is empty", "申請データが空です"),
    ReasonCode.NOT_A_ZIP: ("The package is not a ZIP file", "申請データがZIP形式ではありません"),
    ReasonCode.ZIP_TOO_LARGE: ("The package is larger than allowed", "申請データのサイズが上限を超えています"),
    ReasonCode.ZIP_TOO_MANY_ENTRIES: ("The package has too many files",
                                      "申請データのファイル数が上限を超えています"),
    ReasonCode.ZIP_BOMB: ("The package expands beyond the allowed size (ZIP bomb)",
                          "展開後のサイズまたは圧縮率が上限を超えています（ZIP爆弾の疑い）"),
    ReasonCode.ZIP_UNSAFE_PATH: ("A file name in the package is unsafe", "不正なファイル名（パス）が含まれています"),
    ReasonCode.ZIP_DUPLICATE_ENTRY: ("The package holds the same file name twice",
                                     "同じ名前のファイルが重複しています"),
    ReasonCode.ZIP_ENCRYPTED: ("The package holds an encrypted file", "暗号化されたファイルが含まれています"),
    ReasonCode.ZIP_LINK: ("The package holds a link or special file", "リンク等の特殊なファイルが含まれています"),
    ReasonCode.ZIP_UNSUPPORTED: ("The package uses an unsupported ZIP feature", "対応していないZIP形式です"),
    ReasonCode.ZIP_CORRUPT: ("The package is damaged", "申請データが破損しています"),
    ReasonCode.XML_DTD: ("An XML file has a DOCTYPE (DTD), which is not allowed",
                         "XMLファイルにDTD（DOCTYPE）が含まれています"),
    ReasonCode.XML_MALFORMED: ("An XML file is not well-formed", "XMLファイルの形式が正しくありません"),
    ReasonCode.XML_TOO_LARGE: ("An XML file is larger than allowed", "XMLファイルのサイズが上限を超えています"),
    ReasonCode.MISSING_FILE: ("A required file is missing", "必要なファイルがありません"),
    ReasonCode.UNREFERENCED_FILE: ("A file is not covered by the signature",
                                   "署名の対象外のファイルが含まれています"),
    ReasonCode.BAD_MANIFEST: ("The manifest (構成情報) is invalid", "構成情報の内容が正しくありません"),
    ReasonCode.SIGNATURE_STRUCTURE: ("The signature structure is invalid", "署名の構造が正しくありません"),
    ReasonCode.KEYINFO_NOT_X509DATA: ("The signature's KeyInfo holds something other than X509Data "
                                      "(KeyValue, KeyName, RetrievalMethod …), which the format does not allow",
                                      "署名のKeyInfoにX509Data以外の要素（KeyValue、KeyName等）が含まれています"),
    ReasonCode.DUPLICATE_ID: ("Duplicate ID attributes", "ID属性が重複しています"),
    ReasonCode.BAD_REFERENCE: ("A signature reference is invalid", "署名の参照が正しくありません"),
    ReasonCode.DIGEST_MISMATCH: ("Signed content was changed after signing (digest mismatch)",
                                 "署名後に内容が改ざんされています（ダイジェスト不一致）"),
    ReasonCode.SIGNATURE_INVALID: ("The signature value does not verify", "署名値の検証に失敗しました"),
    ReasonCode.WEAK_ALGORITHM: ("A weak or disallowed algorithm is used",
                                "許可されていない（弱い）アルゴリズムが使われています"),
    ReasonCode.WEAK_KEY: ("The signing key is too weak or of a disallowed type",
                          "署名鍵の種類または長さが要件を満たしません"),
    ReasonCode.NO_SIGNING_CERTIFICATE: ("No signing certificate in the signature",
                                        "署名に署名用電子証明書がありません"),
    ReasonCode.UNTRUSTED_CHAIN: ("The signing certificate does not chain to a JPKI trust anchor",
                                 "署名用電子証明書を公的個人認証の認証局まで検証できません"),
    ReasonCode.CERT_EXPIRED: ("The signing certificate had expired", "署名用電子証明書の有効期限が切れています"),
    ReasonCode.CERT_NOT_YET_VALID: ("The signing certificate was not yet valid", "署名用電子証明書の有効期間前です"),
    ReasonCode.CERT_REVOKED: ("The signing certificate was revoked at or before the arrival time (到達日時)",
                              "署名用電子証明書は到達日時までに失効しています"),
    ReasonCode.CA_REVOKED: ("A CA certificate of the signing certificate's path was revoked at or before "
                            "the arrival time (到達日時)",
                            "署名用電子証明書の発行元の認証局証明書が到達日時までに失効しています"),
    ReasonCode.CERT_USAGE: ("The certificate is not for signing (key usage)", "証明書の鍵用途が署名用ではありません"),
    ReasonCode.CERT_POLICY: ("The certificate is not a JPKI signing certificate (policy)",
                             "署名用電子証明書のポリシーではありません"),
    ReasonCode.REVOCATION_UNKNOWN: ("Revocation status unknown: no CRL of the issuer current at the arrival "
                                    "time or issued after it; try later",
                                    "到達日時時点の失効情報（CRL）が確認できません。後で再検証してください"),
    ReasonCode.BAD_IDENTITY: ("The certificate's 基本4情報 are malformed", "証明書の基本4情報の形式が正しくありません"),
    ReasonCode.ARRIVAL_MISMATCH: ("The arrival record (到達情報) is invalid or does not match the package",
                                  "到達情報が不正、または申請データと一致しません"),
    ReasonCode.ARRIVAL_UNTRUSTED: ("The arrival record is not signed by a trusted portal certificate",
                                   "到達情報の署名を信頼できるポータルの証明書で検証できません"),
    ReasonCode.ARRIVAL_TIME_IN_FUTURE: ("The arrival time (到達日時) is later than the time of processing",
                                        "到達日時が処理時刻より後になっています"),
    ReasonCode.ARRIVAL_TIME_IMPLAUSIBLE: ("The arrival time (到達日時) is implausible (before 2000)",
                                          "到達日時が不正です（2000年より前）"),
}


def describe(code: ReasonCode) -> tuple[str, str]:
    """(English, Japanese) description of ``code``."""
    return _REASONS[code]
