"""Guarantee 3: no personal data survives on the relay's disk or in its logs.

The whole chain runs with the relay's data directory, temp directory and JSON log file in a fresh
directory: pushes (good, signature-failed, tampered, hostile), a pull round, and a status round whose
notices carry comments to the resident (one names a resident). Afterwards every
byte there is searched for every test resident's name, kana and address and for every valid My
Number in the packages that went through. A positive control proves the search finds them.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from dmz_relay.logs import JsonFormatter
from dmz_relay.push import create_app
from dmz_relay.tmpdir import prepare_temp_dir
from dmz_relay.tombstones import Outcome
from intake.db import make_session_factory
from intake.statusoutbox.service import enqueue_status
from portal_sim.api import ApiSettings, FixedClock
from portal_sim.api import create_app as create_portal_app
from signature.testing.builder import ApplicationSpec
from tests.conftest import NOW, PackageFactory, World
from tests.dmz_relay.conftest import Intake, RelayFactory, canaries, files_under, find_canaries, push
from tests.portal_sim.api_support import write_data_dir
from tests.signature import tamper
from tests.support.servers import serve_in_thread

COMMENT_CANARY = "残高証明書を添付して再提出してください（CANARY-コメント-7c1e）"
XXE = b'<!DOCTYPE DataRoot [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'


def test_nothing_personal_on_the_relays_disk_or_in_its_logs(
    world: World, tmp_path: Path, intake: Intake, make_relay: RelayFactory, make_package: PackageFactory,
    spec: ApplicationSpec, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", tempfile.tempdir)  # restored after the test
    monkeypatch.setenv("TMPDIR", os.environ.get("TMPDIR", "/tmp"))  # noqa: S108 - restored value only
    relay_root = tmp_path / "relay-root"
    temp_dir = prepare_temp_dir(relay_root / "tmp")
    log_file = relay_root / "relay.log"
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        # Receipt numbers apart from the portal's (the intake keeps one version per 受付番号).
        sent = [
            make_package(spec=replace(spec, receipt_number="20261125-0000000010")),
            make_package(signer=world.revoked_signer,
                         spec=replace(spec, receipt_number="20261125-0000000011")),
            make_package(spec=replace(spec, receipt_number="20261125-0000000012",
                                      form_xml=tamper.with_doctype(spec.form_xml, XXE))),
        ]
        unpacked = tamper.unpack(make_package(spec=replace(spec, receipt_number="20261125-0000000013")))
        unpacked.edit("保険証.pdf", lambda d: d.replace(b"insurance", b"INSURANCE"))
        sent.append(unpacked.zip())

        portal_dir = relay_root.parent / "portal"
        write_data_dir(world, portal_dir)
        portal_app = create_portal_app(portal_dir, settings=ApiSettings(clock=FixedClock(NOW), rate_limit=None))
        with serve_in_thread(portal_app) as portal_url:
            relay = make_relay(intake.url, portal_url=portal_url, data_dir=relay_root / "data")
            with serve_in_thread(create_app(relay)) as relay_url:
                statuses = [push(relay_url, body).status_code for body in sent]
            assert relay.puller is not None
            pulled = relay.puller.poll_once()
            # Status notices with comments to the resident (which may name them) go through the
            # relay too: the comments must reach the portal and nothing of them the relay's disk or logs.
            receipt = sorted((portal_dir / "packages").iterdir())[0].stem
            with make_session_factory(intake.engine)() as s:
                for status, comment in (("受付", f"{world.residents[0].name} 様の申請を受け付けました。"),
                                        ("補正依頼", COMMENT_CANARY)):
                    enqueue_status(s, receipt_number=receipt, status=status, at=NOW, comment=comment)
                s.commit()
            assert relay.status_relay is not None
            relayed = relay.status_relay.run_once()
        sent.extend(p.read_bytes() for p in sorted((portal_dir / "packages").iterdir()))
        relay.close()
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()

    assert statuses == [201, 201, 422, 201]
    assert pulled.stopped is None
    # ours, and the intake's own notices from the pulled packages (a 取下げ among them)
    assert relayed.delivered >= 2
    assert (relayed.refused, relayed.acknowledged, relayed.stopped) == (0, relayed.delivered, None)
    assert pulled.count(Outcome.STORED) == 7
    assert os.listdir(temp_dir) == []

    words = canaries(world, sent) | {COMMENT_CANARY, "残高証明書"}
    assert len(words) > 10
    # Positive control: the comments did reach the portal (its own status file holds them).
    portal_status = files_under(portal_dir / "status")
    assert find_canaries(portal_status, {COMMENT_CANARY, world.residents[0].name})
    # Positive control: the search finds the canaries where they are (in the form, in plain text).
    assert find_canaries({"form": spec.form_xml}, words)
    assert find_canaries({"name": world.residents[0].name.encode("cp932")}, words)
    blobs = files_under(relay_root / "data", temp_dir, log_file)
    assert any(name.endswith("tombstones.db") for name in blobs)
    assert b'"event": "package.erased"' in blobs[str(log_file)]  # the log did record the run
    assert find_canaries(blobs, words) == []

