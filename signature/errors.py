"""Exception tree of :mod:`signature`.

Internal checks raise :class:`VerificationFailure` (or its subclass :class:`UnreadablePackage`);
:func:`signature.verify_package` turns them into a :class:`~signature.report.VerificationReport`
and never lets them escape. Errors of other libraries are translated at the boundary with
``raise … from exc``. Messages name checks, elements and the package's file names, never the content
of a field (names, addresses, birth dates, My Numbers, certificate subjects). A file name is chosen
by the applicant and may itself be personal ("山田太郎_住民票.pdf"), so only the :class:`ReasonCode`
is for logs and for other zones; the detail text is for staff in the My Number zone.
"""

from __future__ import annotations

from signature.report import Indication, ReasonCode, SubIndication

__all__ = [
    "SignatureError",
    "TrustConfigError",
    "UnreadablePackage",
    "VerificationFailure",
]


class SignatureError(Exception):
    """Base class of every error raised by :mod:`signature`."""


class TrustConfigError(SignatureError):
    """Trust anchors or revocation data given by configuration cannot be used."""


class VerificationFailure(SignatureError):
    """A package is not (or not yet) acceptable; carries the report's classification."""

    def __init__(
        self,
        code: ReasonCode,
        detail: str,
        *,
        indication: Indication = Indication.FAILED,
        sub_indication: SubIndication = SubIndication.FORMAT_FAILURE,
    ) -> None:
        super().__init__(f"{code.value}: {detail}")
        self.code = code
        self.detail = detail
        self.indication = indication
        self.sub_indication = sub_indication


class UnreadablePackage(VerificationFailure):
    """The container or its XML is malformed or hostile: nothing in it may be used."""

    def __init__(self, code: ReasonCode, detail: str) -> None:
        super().__init__(code, detail, indication=Indication.FAILED,
                         sub_indication=SubIndication.FORMAT_FAILURE)
