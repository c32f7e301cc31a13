"""Attachment files are real files of their type; the EICAR file is the standard one."""

from __future__ import annotations

import hashlib
import random
import struct
import zlib

import pytest

from portal_sim.attachments import EICAR, page_jpeg, sample_png, scanned_pdf
from signature.media import sniff_media_type


def decode_flat_jpeg(data: bytes) -> tuple[int, int, list[int]]:
    """(width, height, grey level of each 8×8 block) of a baseline greyscale JPEG whose blocks carry
    a DC coefficient only — a deliberately small decoder that reads the tables from the file."""
    assert data[:2] == b"\xff\xd8"
    assert data[-2:] == b"\xff\xd9"
    pos, quant, size = 2, None, None
    tables: dict[int, dict[tuple[int, int], int]] = {}
    while True:
        marker, length = struct.unpack(">HH", data[pos:pos + 4])
        body = data[pos + 4:pos + 2 + length]
        pos += 2 + length
        if marker == 0xFFDB:
            quant = body[1]
        elif marker == 0xFFC0:
            precision, height, width, components = struct.unpack(">BHHB", body[:6])
            assert (precision, components) == (8, 1)
            size = (width, height)
        elif marker == 0xFFC4:
            counts, values, code, k = body[1:17], body[17:], 0, 0
            codes: dict[tuple[int, int], int] = {}
            for length, count in enumerate(counts, start=1):
                for _ in range(count):
                    codes[(length, code)] = values[k]
                    code, k = code + 1, k + 1
                code <<= 1
            tables[body[0]] = codes
        elif marker == 0xFFDA:
            break
    scan = data[pos:-2].replace(b"\xff\x00", b"\xff")
    bits = "".join(f"{b:08b}" for b in scan)
    i = 0

    def symbol(table: dict[tuple[int, int], int]) -> int:
        nonlocal i
        for length in range(1, 17):
            key = (length, int(bits[i:i + length], 2))
            if key in table:
                i += length
                return table[key]
        raise AssertionError("no Huffman code matches")

    assert size is not None
    assert quant is not None
    levels, dc = [], 0
    for _ in range((size[0] // 8) * (size[1] // 8)):
        category = symbol(tables[0x00])
        if category:
            raw = int(bits[i:i + category], 2)
            i += category
            dc += raw if raw >> (category - 1) else raw - (1 << category) + 1
        assert symbol(tables[0x10]) == 0x00  # end of block: no AC coefficients
        levels.append(dc * quant // 8 + 128)
    return size[0], size[1], levels


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_page_jpeg_is_a_decodable_baseline_jfif(seed: int) -> None:
    data = page_jpeg(random.Random(seed), width_blocks=10, height_blocks=6)
    assert data[6:11] == b"JFIF\x00"
    assert sniff_media_type(data) == "image/jpeg"
    width, height, levels = decode_flat_jpeg(data)
    assert (width, height) == (80, 48)
    assert all(0 <= v <= 255 for v in levels)
    assert min(levels) < 128 < max(levels)  # paper and "text"
    assert len(data) < 1000


def test_page_jpegs_differ_between_applications() -> None:
    assert page_jpeg(random.Random(1)) != page_jpeg(random.Random(2))


def test_png_and_pdf_are_well_formed() -> None:
    png = sample_png(9, 7)
    assert sniff_media_type(png) == "image/png"
    pos = 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        kind, body = png[pos + 4:pos + 8], png[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", png[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + body)
        pos += 12 + length
    pdf = scanned_pdf("20261125-0000000001 JIDOTEATE-01 #0")
    assert sniff_media_type(pdf) == "application/pdf"
    assert pdf.startswith(b"%PDF-1.4")
    assert pdf.rstrip().endswith(b"%%EOF")


def test_eicar_is_the_standard_test_file() -> None:
    assert len(EICAR) == 68
    assert hashlib.sha256(EICAR).hexdigest() == "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
