"""The chain's applicant as staff search for it: the kana key of the list's フリガナ filter and the
person search keys (:mod:`intake.personkeys`: typed 氏名/フリガナ/電話番号, the certificate's name and
birth date). One owner: they are replaced whenever a version becomes the chain's current one —
the first application on its arrival (:mod:`intake.applications.arrivals`), any other version when
it is admitted (:mod:`intake.applications.admission`). A held version never touches them: another
resident's package must not make the chain findable under their name.

Services never commit.
"""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.orm import Session

from intake.kana import search_key
from intake.models import ApplicantKey, Application, ApplicationVersion
from intake.personkeys import keys_for

__all__ = ["index_applicant"]


def index_applicant(session: Session, app: Application, version: ApplicationVersion) -> None:
    """Replace the chain's search keys by those of ``version`` (its signer row must be set)."""
    kana = dict((str(k), str(v)) for k, v in version.applicant).get("氏名フリガナ")
    app.applicant_kana = search_key(kana) if kana else None
    signer = version.signer
    keys = keys_for(version.applicant, signer_names=(signer.name, signer.name_alt) if signer else (),
                    birth_date=signer.birth_date if signer else None)
    session.execute(delete(ApplicantKey).where(ApplicantKey.application_id == app.id))
    session.add_all(ApplicantKey(application_id=app.id, kind=kind, key=key) for kind, key in sorted(keys))
    session.flush()
