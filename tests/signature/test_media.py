"""Media types come from content, never from file names."""

from __future__ import annotations

import pytest

from signature.media import sniff_media_type
from signature.testing.samples import sample_pdf, sample_png


@pytest.mark.parametrize(
    ("data", "media_type"),
    [
        pytest.param(sample_pdf(), "application/pdf", id="pdf"),
        pytest.param(sample_png(), "image/png", id="png"),
        pytest.param(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 32, "image/jpeg", id="jpeg"),
        pytest.param(b"<?xml version='1.0'?><r/>", "application/xml", id="xml"),
        pytest.param("申請書の補足です。\n".encode(), "text/plain", id="utf8-text"),
        pytest.param("申請書の補足です。\r\n".encode("cp932"), "text/plain", id="cp932-text"),
        pytest.param(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00", "application/octet-stream", id="exe"),
        pytest.param(b"PK\x03\x04" + b"\x00" * 26, "application/zip", id="zip"),
    ],
)
def test_sniff(data: bytes, media_type: str) -> None:
    assert sniff_media_type(data) == media_type
