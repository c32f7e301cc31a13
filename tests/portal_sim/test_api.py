"""The portal API over real HTTP: login, listing and paging, package download, errors.

Each test builds its own app on a fresh data directory, with the clock pinned at NOW, and mounts it
on the module's uvicorn server; time moves only when a test moves it.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import NOW, World
from tests.portal_sim.api_support import (
    API_KEY,
    MUNICIPALITY,
    Harness,
    Server,
    Start,
    bearer,
    receipt,
    start_portal,
)


def list_all(portal: Harness, token: str, **params: Any) -> tuple[list[str], str | None]:
    """Follow next_cursor until has_more is false; returns the receipt numbers and the last cursor."""
    seen: list[str] = []
    cursor = params.pop("cursor", None)
    for _ in range(100):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        body = portal.client.get("/api/v1/applications", params=query, headers=bearer(token)).json()
        seen += [item["receipt_number"] for item in body["items"]]
        cursor = body["next_cursor"]
        if not body["has_more"]:
            return seen, cursor
    raise AssertionError("paging did not end")


# -- login and tokens -------------------------------------------------------------------------

def test_login_returns_a_bearer_token(portal: Harness) -> None:
    response = portal.client.post("/api/v1/login", json={"municipality_code": MUNICIPALITY, "api_key": API_KEY})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"  # noqa: S105 - the RFC 6750 token type, not a secret
    assert body["expires_in"] == 3600
    assert len(body["access_token"]) >= 32
    assert portal.client.get("/api/v1/applications", headers=bearer(body["access_token"])).status_code == 200


@pytest.mark.parametrize(("code", "key"), [
    pytest.param(MUNICIPALITY, "f" * 32, id="wrong-api-key"),
    pytest.param("131016", API_KEY, id="other-municipality"),
])
def test_login_with_wrong_credentials_is_401(portal: Harness, code: str, key: str) -> None:
    response = portal.client.post("/api/v1/login", json={"municipality_code": code, "api_key": key})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "INVALID_CREDENTIALS"
    assert "WWW-Authenticate" in response.headers
    assert key not in response.text


def test_login_body_must_match_schema(portal: Harness) -> None:
    response = portal.client.post("/api/v1/login", json={"municipality_code": "13103", "api_key": API_KEY})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "INVALID_REQUEST"
    assert API_KEY not in response.text


@pytest.mark.parametrize(("headers", "code"), [
    pytest.param({}, "UNAUTHENTICATED", id="no-header"),
    pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, "UNAUTHENTICATED", id="basic-scheme"),
    pytest.param({"Authorization": "Bearer not-a-token-we-issued"}, "INVALID_TOKEN", id="unknown-token"),
])
def test_requests_without_a_valid_token_are_401(portal: Harness, headers: dict[str, str], code: str) -> None:
    response = portal.client.get("/api/v1/applications", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_token_expires_after_its_lifetime(start: Start) -> None:
    portal = start(token_ttl=timedelta(minutes=10))
    token = portal.token()
    portal.clock.advance(timedelta(minutes=10) - timedelta(seconds=1))
    assert portal.client.get("/api/v1/applications", headers=bearer(token)).status_code == 200
    portal.clock.advance(timedelta(seconds=1))
    response = portal.client.get("/api/v1/applications", headers=bearer(token))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "TOKEN_EXPIRED"
    assert portal.client.get("/api/v1/applications", headers=bearer(portal.token())).status_code == 200


def test_tokens_do_not_survive_a_restart(server: Server, world: World, tmp_path: Path) -> None:
    with ExitStack() as first:
        token = start_portal(first, server, world, tmp_path / "data").token()
    with ExitStack() as second:
        again = start_portal(second, server, world, tmp_path / "data")
        response = again.client.get("/api/v1/applications", headers=bearer(token))
        assert response.json()["error"]["code"] == "INVALID_TOKEN"


# -- the application list ----------------------------------------------------------------------

def test_paging_returns_every_arrived_application_once_in_order(portal: Harness) -> None:
    seen, _ = list_all(portal, portal.token(), limit=2)
    assert seen == [a.receipt_number for a in portal.arrived()]
    assert len(seen) == len(set(seen)) == 7


def test_same_arrival_time_is_ordered_by_receipt_number(portal: Harness) -> None:
    seen, _ = list_all(portal, portal.token(), limit=100)
    assert seen.index(receipt(3)) + 1 == seen.index(receipt(4))


def test_page_size_is_respected_and_has_more_is_true_until_the_end(portal: Harness) -> None:
    token = portal.token()
    first = portal.client.get("/api/v1/applications", params={"limit": 3}, headers=bearer(token)).json()
    assert len(first["items"]) == 3
    assert first["has_more"] is True
    rest = portal.client.get("/api/v1/applications", params={"limit": 100, "cursor": first["next_cursor"]},
                             headers=bearer(token)).json()
    assert len(rest["items"]) == 4
    assert rest["has_more"] is False


def test_only_applications_arrived_by_now_are_listed(portal: Harness) -> None:
    token = portal.token()
    seen, cursor = list_all(portal, token, limit=3)
    assert receipt(8) not in seen
    assert receipt(9) not in seen
    # A poll with the last cursor sees nothing new until the clock reaches the next arrival...
    idle = portal.client.get("/api/v1/applications", params={"cursor": cursor}, headers=bearer(token)).json()
    assert idle == {"items": [], "next_cursor": cursor, "has_more": False}
    # ...and then exactly the new ones: no gap, no repeat.
    portal.clock.advance(timedelta(minutes=30))
    new, cursor = list_all(portal, token, cursor=cursor)
    assert new == [receipt(8)]
    portal.clock.advance(timedelta(minutes=30))  # the first token has expired by now (TTL 1 h)
    assert list_all(portal, portal.token(), cursor=cursor)[0] == [receipt(9)]


def test_since_is_inclusive_and_combines_with_paging(portal: Harness) -> None:
    since = (NOW - timedelta(minutes=120)).isoformat()
    seen, _ = list_all(portal, portal.token(), since=since, limit=2)
    assert seen == [receipt(3), receipt(4), receipt(5), receipt(6), receipt(7)]


def test_since_in_another_offset_means_the_same_instant(portal: Harness) -> None:
    since = (NOW - timedelta(minutes=120)).astimezone(tz=None).isoformat()
    utc = (NOW - timedelta(minutes=120)).astimezone(NOW.tzinfo).isoformat()
    token = portal.token()
    assert list_all(portal, token, since=since) == list_all(portal, token, since=utc)


def test_list_items_carry_metadata_and_no_personal_data(portal: Harness, world: World) -> None:
    response = portal.client.get("/api/v1/applications", params={"limit": 100}, headers=bearer(portal.token()))
    item = response.json()["items"][0]
    assert set(item) == {"receipt_number", "arrived_at", "procedure_id", "procedure_name", "kind",
                         "first_receipt_number", "sha256", "size"}
    first = portal.apps[0]
    assert item["receipt_number"] == first.receipt_number
    assert item["arrived_at"] == first.arrived_at.isoformat()
    assert (item["sha256"], item["size"]) == (first.sha256, first.size)
    resident = world.residents[0]
    for personal in (resident.name, resident.name_kana, resident.address, "R000001", "子ども家庭支援課"):
        assert personal not in response.text
    kinds = {i["receipt_number"]: (i["kind"], i["first_receipt_number"]) for i in response.json()["items"]}
    assert kinds[receipt(5)] == ("再申請", receipt(1))


@pytest.mark.parametrize("params", [
    pytest.param({"limit": 0}, id="limit-0"),
    pytest.param({"limit": 101}, id="limit-101"),
    pytest.param({"since": "2026-11-25T09:00:00"}, id="naive-since"),
    pytest.param({"since": "yesterday"}, id="not-a-date"),
])
def test_bad_list_parameters_are_422(portal: Harness, params: dict[str, Any]) -> None:
    response = portal.client.get("/api/v1/applications", params=params, headers=bearer(portal.token()))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "INVALID_REQUEST"


@pytest.mark.parametrize("cursor", [
    pytest.param("!!!", id="not-base64"),
    pytest.param(base64.urlsafe_b64encode(b'{"k":"statuses","p":[1]}').decode(), id="cursor-of-another-list"),
    pytest.param(base64.urlsafe_b64encode(b'{"k":"applications","p":["soon","x"]}').decode(), id="bad-position"),
])
def test_foreign_cursors_are_400(portal: Harness, cursor: str) -> None:
    response = portal.client.get("/api/v1/applications", params={"cursor": cursor}, headers=bearer(portal.token()))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_CURSOR"


# -- one application and its package ---------------------------------------------------------------

def test_application_metadata_includes_current_status(portal: Harness) -> None:
    response = portal.client.get(f"/api/v1/applications/{receipt(5)}", headers=bearer(portal.token()))
    assert response.status_code == 200
    body = response.json()
    assert body["receipt_number"] == receipt(5)
    assert body["first_receipt_number"] == receipt(1)
    assert body["status"] == "到達"
    assert body["status_at"] == body["arrived_at"]


def test_package_download_is_the_file_with_its_digest(portal: Harness) -> None:
    number = receipt(6)
    response = portal.client.get(f"/api/v1/applications/{number}/package", headers=bearer(portal.token()))
    assert response.status_code == 200
    expected = (portal.data_dir / "packages" / f"{number}.zip").read_bytes()
    assert response.content == expected
    assert response.headers["Content-Type"] == "application/zip"
    assert int(response.headers["Content-Length"]) == len(expected)
    digest = base64.b64encode(hashlib.sha256(expected).digest()).decode()
    assert response.headers["Repr-Digest"] == f"sha-256=:{digest}:"
    assert response.headers["ETag"] == f'"{hashlib.sha256(expected).hexdigest()}"'
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("damage", ["changed-byte", "deleted"])
def test_package_damaged_on_the_portal_side_is_500_not_bad_bytes(portal: Harness, damage: str) -> None:
    number = receipt(2)
    path = portal.data_dir / "packages" / f"{number}.zip"
    if damage == "deleted":
        path.unlink()
    else:
        data = path.read_bytes()
        path.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    response = portal.client.get(f"/api/v1/applications/{number}/package", headers=bearer(portal.token()))
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "PACKAGE_UNAVAILABLE"
    assert str(portal.data_dir) not in response.text


@pytest.mark.parametrize("suffix", ["", "/package", "/status"])
def test_unknown_receipt_number_is_404(portal: Harness, suffix: str) -> None:
    response = portal.client.get(f"/api/v1/applications/{receipt(99)}{suffix}", headers=bearer(portal.token()))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_application_not_yet_arrived_is_404_until_it_arrives(portal: Harness) -> None:
    token = portal.token()
    url = f"/api/v1/applications/{receipt(8)}/package"
    assert portal.client.get(url, headers=bearer(token)).status_code == 404
    portal.clock.advance(timedelta(minutes=30))
    assert portal.client.get(url, headers=bearer(token)).status_code == 200


@pytest.mark.parametrize("number", [
    pytest.param("manifest", id="word"),
    pytest.param("20261125_0000000001", id="underscore"),
    pytest.param("20261125-00000000001", id="too-long"),
    pytest.param("..%2Fmanifest.json", id="encoded-dot-dot"),
    pytest.param("%2E%2E", id="encoded-dots"),
    pytest.param("20261125-000000000%31%00", id="nul-byte"),
    pytest.param("受付番号", id="japanese"),
])
def test_malformed_receipt_numbers_never_reach_the_disk(portal: Harness, number: str) -> None:
    token = portal.token()
    response = portal.client.get(f"/api/v1/applications/{number}/package", headers=bearer(token))
    assert response.status_code in {400, 404}
    assert response.json()["error"]["code"] in {"INVALID_RECEIPT_NUMBER", "NOT_FOUND"}
    assert API_KEY not in response.text
    assert response.headers["Content-Type"] == "application/json"


def test_plainly_malformed_receipt_number_is_400(portal: Harness) -> None:
    response = portal.client.get("/api/v1/applications/20261125-12/package", headers=bearer(portal.token()))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_RECEIPT_NUMBER"


# -- general behaviour -------------------------------------------------------------------------------

def test_unknown_path_and_method_answer_in_the_error_format(portal: Harness) -> None:
    missing = portal.client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NOT_FOUND"
    wrong = portal.client.delete("/api/v1/login")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversized_request_body_is_413(start: Start, chunked: bool) -> None:
    portal = start(max_body_bytes=1024)
    body = b'{"municipality_code": "131032", "api_key": "' + b"a" * 2000 + b'"}'
    content: bytes | Iterator[bytes] = iter([body[:600], body[600:]]) if chunked else body
    response = portal.client.post("/api/v1/login", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == {"code": "PAYLOAD_TOO_LARGE", "message": "request body larger than 1024 bytes",
                                        "details": {"limit": 1024}}


def test_healthz_needs_no_token(portal: Harness) -> None:
    assert portal.client.get("/healthz").json() == {"status": "ok"}


def test_openapi_describes_every_operation(portal: Harness) -> None:
    spec = portal.client.get("/openapi.json").json()
    operations = {(path, method) for path, item in spec["paths"].items() for method in item}
    assert {
        ("/api/v1/login", "post"),
        ("/api/v1/applications", "get"),
        ("/api/v1/applications/{receipt_number}", "get"),
        ("/api/v1/applications/{receipt_number}/package", "get"),
        ("/api/v1/applications/{receipt_number}/status", "get"),
        ("/api/v1/applications/{receipt_number}/status", "post"),
        ("/api/v1/statuses", "get"),
    } <= operations
    listing = spec["paths"]["/api/v1/applications"]["get"]
    assert {"401", "429", "503"} <= set(listing["responses"])
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "ErrorBody" in spec["components"]["schemas"]


def test_login_needs_no_token_but_the_rest_does(portal: Harness) -> None:
    spec = portal.client.get("/openapi.json").json()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            secured = bool(operation.get("security"))
            assert secured is (path.startswith("/api/v1/") and path != "/api/v1/login"), (method, path)
