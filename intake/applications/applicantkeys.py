"""The chain's applicant as staff search for it: the kana key of the list's フリガナ filter and the
person search keys (:mod:`intake.personkeys`: typed 氏名/フリガナ/電話番号, the certificate's name and
birth date). One owner: they are replaced whenever a version becomes the chain's current one —
the first application on its arrival (:mod:`intake.applications.arrivals`), any other version when
it is admitted (:mod:`intake.applications.admission`). A held version never touches them: another
resident's package must not make the chain findable under their name.

Services never commit.
"""

from __future__ import annotations

from sqlalchemy import bindparam, delete, insert
from sqlalchemy.orm import Session

from intake.db import table_of
from intake.kana import search_key
from intake.models import ApplicantKey, Application, ApplicationVersion
from intake.personkeys import keys_for

__all__ = ["index_applicant"]

_KEYS = table_of(ApplicantKey)
_DELETE_KEYS = delete(_KEYS).where(_KEYS.c.application_id == bindparam("b_application_id"))
_INSERT_KEY = insert(_KEYS)


def index_applicant(session: Session, app: Application, version: ApplicationVersion, *, new_chain: bool = False
                    ) -> None:
    """Replace the chain's search keys by those of ``version`` (its signer row must be set).
    ``new_chain``: ``app`` was inserted by this transaction, so it has no keys yet to delete."""
    kana = dict((str(k), str(v)) for k, v in version.applicant).get("氏名フリガナ")
    app.applicant_kana = search_key(kana) if kana else None
    signer = version.signer
    keys = keys_for(version.applicant, signer_names=(signer.name, signer.name_alt) if signer else (),
                    birth_date=signer.birth_date if signer else None)
    # Core on the session's connection, no ORM objects: the keys are only ever read by queries
    # (:mod:`intake.applications.listing`), never loaded as objects (docs/decisions.md, "Core for a
    # delivery's writes").
    connection = session.connection()
    if not new_chain:
        connection.execute(_DELETE_KEYS, {"b_application_id": app.id})
    if keys:
        connection.execute(_INSERT_KEY, [{"application_id": app.id, "kind": kind, "key": key}
                                         for kind, key in sorted(keys)])
