"""Processing status over real HTTP: history, transitions, idempotency, the status list, restarts."""

from __future__ import annotations

import json
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import NOW, World
from tests.portal_sim.api_support import Harness, Server, bearer, receipt, start_portal


@pytest.fixture
def token(portal: Harness) -> str:
    return portal.token()


def set_status(portal: Harness, token: str, number: str, status: str, comment: str | None = None,
               key: str | None = None) -> httpx.Response:
    headers = {**bearer(token), **({"Idempotency-Key": key} if key else {})}
    body: dict[str, Any] = {"status": status, **({"comment": comment} if comment is not None else {})}
    return portal.client.post(f"/api/v1/applications/{number}/status", json=body, headers=headers)


def history(portal: Harness, token: str, number: str) -> dict[str, Any]:
    response = portal.client.get(f"/api/v1/applications/{number}/status", headers=bearer(token))
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_history_of_a_new_arrival_is_just_arrival(portal: Harness, token: str) -> None:
    body = history(portal, token, receipt(1))
    assert body == {"receipt_number": receipt(1), "current": "到達", "history": [
        {"seq": None, "status": "到達", "at": (NOW - timedelta(minutes=180)).isoformat(), "comment": None}]}


def test_updates_are_appended_with_the_portal_clock(portal: Harness, token: str) -> None:
    number = receipt(2)
    first = set_status(portal, token, number, "受付")
    assert first.status_code == 201
    assert first.headers["Location"] == f"/api/v1/applications/{number}/status"
    portal.clock.advance(timedelta(minutes=5))
    assert set_status(portal, token, number, "審査中").status_code == 201
    portal.clock.advance(timedelta(minutes=5))
    assert set_status(portal, token, number, "完了", "交付決定通知書を郵送しました。").status_code == 201
    body = history(portal, token, number)
    assert body["current"] == "完了"
    assert [(e["status"], e["at"], e["comment"]) for e in body["history"]] == [
        ("到達", (NOW - timedelta(minutes=150)).isoformat(), None),
        ("受付", NOW.isoformat(), None),
        ("審査中", (NOW + timedelta(minutes=5)).isoformat(), None),
        ("完了", (NOW + timedelta(minutes=10)).isoformat(), "交付決定通知書を郵送しました。"),
    ]
    detail = portal.client.get(f"/api/v1/applications/{number}", headers=bearer(token)).json()
    assert (detail["status"], detail["status_at"]) == ("完了", (NOW + timedelta(minutes=10)).isoformat())


def test_identical_repeat_is_idempotent(portal: Harness, token: str) -> None:
    number = receipt(3)
    created = set_status(portal, token, number, "受付", "受け付けました")
    repeated = set_status(portal, token, number, "受付", "受け付けました")
    assert (created.status_code, repeated.status_code) == (201, 200)
    assert repeated.json() == created.json()
    assert len(history(portal, token, number)["history"]) == 2


def test_idempotency_key_repeat_returns_the_original_entry_after_later_updates(portal: Harness, token: str) -> None:
    number = receipt(3)
    created = set_status(portal, token, number, "受付", key="req-0001")
    assert set_status(portal, token, number, "審査中", key="req-0002").status_code == 201
    repeated = set_status(portal, token, number, "受付", key="req-0001")  # a retry that crossed a reply
    assert repeated.status_code == 200
    assert repeated.json() == created.json()
    assert history(portal, token, number)["current"] == "審査中"


def test_idempotency_key_reused_for_another_update_is_422(portal: Harness, token: str) -> None:
    number = receipt(3)
    assert set_status(portal, token, number, "受付", key="req-0001").status_code == 201
    response = set_status(portal, token, number, "却下", key="req-0001")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert history(portal, token, number)["current"] == "受付"


@pytest.mark.parametrize(("path", "attempt"), [
    pytest.param([], "審査中", id="arrival-to-review-skips-acceptance"),
    pytest.param([], "補正依頼", id="arrival-to-correction-request"),
    pytest.param(["受付", "完了"], "審査中", id="completed-is-final"),
    pytest.param(["却下"], "受付", id="rejected-is-final"),
    pytest.param(["受付", "取下げ"], "完了", id="withdrawn-is-final"),
    pytest.param(["受付", "審査中"], "受付", id="no-way-back-to-acceptance"),
    pytest.param(["受付"], "受付", id="same-status-other-comment"),
])
def test_illegal_transition_is_409_and_changes_nothing(
    portal: Harness, token: str, path: list[str], attempt: str,
) -> None:
    number = receipt(4)
    for status in path:
        assert set_status(portal, token, number, status).status_code == 201
    before = history(portal, token, number)
    comment = "another comment" if path and attempt == path[-1] else None
    response = set_status(portal, token, number, attempt, comment)
    assert response.status_code == 409
    current = path[-1] if path else "到達"
    assert response.json()["error"] == {"code": "ILLEGAL_TRANSITION", "message": f"status {attempt} cannot follow "
                                        f"{current}", "details": {"from": current, "to": attempt}}
    assert history(portal, token, number) == before


def test_correction_request_and_review_can_alternate(portal: Harness, token: str) -> None:
    number = receipt(4)
    for status in ["受付", "審査中", "補正依頼", "審査中", "補正依頼", "審査中", "完了"]:
        assert set_status(portal, token, number, status).status_code == 201, status


def test_arrival_is_set_by_the_portal_only(portal: Harness, token: str) -> None:
    response = set_status(portal, token, receipt(1), "到達")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "STATUS_NOT_SETTABLE"


@pytest.mark.parametrize("body", [
    pytest.param({"status": "保留"}, id="unknown-status"),
    pytest.param({"status": "受付", "comment": "山田太郎様 " + "あ" * 1000}, id="comment-too-long"),
    pytest.param({"status": "受付", "extra": 1}, id="unknown-field"),
    pytest.param({}, id="no-status"),
])
def test_invalid_update_body_is_422_without_echo(portal: Harness, token: str, body: dict[str, Any]) -> None:
    response = portal.client.post(f"/api/v1/applications/{receipt(1)}/status", json=body, headers=bearer(token))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "INVALID_REQUEST"
    assert "山田" not in response.text
    assert "保留" not in response.text


def test_malformed_idempotency_key_is_422(portal: Harness, token: str) -> None:
    response = set_status(portal, token, receipt(1), "受付", key="x" * 129)
    assert response.status_code == 422


def test_status_of_an_application_not_yet_arrived_is_404(portal: Harness, token: str) -> None:
    response = set_status(portal, token, receipt(8), "受付")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_status_list_is_in_update_order_and_pages_without_gaps(portal: Harness, token: str) -> None:
    updates = [(receipt(5), "受付"), (receipt(1), "受付"), (receipt(5), "審査中"), (receipt(1), "却下"),
               (receipt(6), "受付")]
    for number, status in updates:
        assert set_status(portal, token, number, status).status_code == 201
        portal.clock.advance(timedelta(minutes=1))
    seen: list[tuple[str, str]] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = portal.client.get("/api/v1/statuses", params=params, headers=bearer(token)).json()
        seen += [(item["receipt_number"], item["status"]) for item in page["items"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert seen == updates
    # The last cursor picks up exactly the updates made after it.
    assert set_status(portal, token, receipt(6), "審査中").status_code == 201
    later = portal.client.get("/api/v1/statuses", params={"cursor": cursor}, headers=bearer(token)).json()
    assert [(i["receipt_number"], i["status"]) for i in later["items"]] == [(receipt(6), "審査中")]


def test_status_list_since_filter_and_no_comments(portal: Harness, token: str) -> None:
    assert set_status(portal, token, receipt(1), "受付", "山田様の申請を受け付けました").status_code == 201
    portal.clock.advance(timedelta(minutes=40))
    assert set_status(portal, token, receipt(2), "受付").status_code == 201
    response = portal.client.get("/api/v1/statuses", params={"since": (NOW + timedelta(minutes=30)).isoformat()},
                                 headers=bearer(token))
    assert [i["receipt_number"] for i in response.json()["items"]] == [receipt(2)]
    everything = portal.client.get("/api/v1/statuses", headers=bearer(token))
    assert set(everything.json()["items"][0]) == {"seq", "receipt_number", "status", "at"}
    assert "山田" not in everything.text


def test_status_list_refuses_an_application_list_cursor(portal: Harness, token: str) -> None:
    cursor = portal.client.get("/api/v1/applications", params={"limit": 1},
                               headers=bearer(token)).json()["next_cursor"]
    response = portal.client.get("/api/v1/statuses", params={"cursor": cursor}, headers=bearer(token))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_CURSOR"


def test_history_survives_a_restart_and_files_are_complete_json(
    server: Server, world: World, tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    with ExitStack() as first:
        portal = start_portal(first, server, world, data)
        token = portal.token()
        assert set_status(portal, token, receipt(1), "受付", key="k-1").status_code == 201
        assert set_status(portal, token, receipt(2), "却下", "要件を満たしていません").status_code == 201
        before = history(portal, token, receipt(2))
    files = sorted(p.name for p in (data / "status").iterdir())
    assert files == [f"{receipt(1)}.json", f"{receipt(2)}.json"]  # no temp files left behind
    stored = json.loads((data / "status" / f"{receipt(2)}.json").read_text("utf-8"))
    assert stored["entries"][0]["status"] == "却下"
    with ExitStack() as second:
        again = start_portal(second, server, world, data)
        token = again.token()
        assert history(again, token, receipt(2)) == before
        assert set_status(again, token, receipt(1), "受付", key="k-1").status_code == 200  # key remembered
        assert set_status(again, token, receipt(2), "受付").status_code == 409  # 却下 is still final
        page = again.client.get("/api/v1/statuses", headers=bearer(token)).json()
        assert [i["seq"] for i in page["items"]] == [1, 2]
        assert set_status(again, token, receipt(3), "受付").json()["seq"] == 3  # numbering continues
