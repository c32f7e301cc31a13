"""Small but valid attachment files: PDF, PNG and baseline JPEG, plus the EICAR test file.

Attachments are what residents photograph or scan, so the JPEG matters: it is built here by hand
(no imaging library is a dependency) as a baseline JFIF of a grey "scanned page", a light
background with darker blocks for lines of text, so that each application's image differs.
Every 8×8 block is flat (DC coefficient only, no AC), which keeps the encoder to a few lines.
"""

from __future__ import annotations

import random
import struct

from signature.testing.samples import sample_pdf, sample_png

__all__ = ["EICAR", "page_jpeg", "sample_pdf", "sample_png", "scanned_pdf"]

#: The EICAR anti-virus test file (68 bytes): harmless, and detected by every virus scanner.
#: Assembled from two halves so that this source file itself is not flagged.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"

# ITU-T T.81 Annex K.3, table K.3: the typical luminance DC table (categories 0–11).
_DC_BITS = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)
_DC_VALUES = tuple(range(12))
# An AC table with the end-of-block symbol only: every block is flat.
_AC_BITS = (1,) + (0,) * 15
_AC_VALUES = (0x00,)


def _huffman_codes(bits: tuple[int, ...], values: tuple[int, ...]) -> dict[int, tuple[int, int]]:
    """symbol → (code, length), canonical as in T.81 Annex C."""
    codes: dict[int, tuple[int, int]] = {}
    code, k = 0, 0
    for length, count in enumerate(bits, start=1):
        for _ in range(count):
            codes[values[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return codes


_DC_CODES = _huffman_codes(_DC_BITS, _DC_VALUES)
_AC_CODES = _huffman_codes(_AC_BITS, _AC_VALUES)


class _BitWriter:
    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def write(self, value: int, length: int) -> None:
        for i in range(length - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> i) & 1)
            self.n += 1
            if self.n == 8:
                self._emit()

    def _emit(self) -> None:
        self.out.append(self.acc)
        if self.acc == 0xFF:
            self.out.append(0x00)  # byte stuffing (T.81 F.1.2.3)
        self.acc, self.n = 0, 0

    def finish(self) -> bytes:
        if self.n:
            self.acc = (self.acc << (8 - self.n)) | ((1 << (8 - self.n)) - 1)  # pad with 1-bits
            self.n = 8
            self._emit()
        return bytes(self.out)


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">HH", 0xFF00 | marker, len(payload) + 2) + payload


def _jpeg(levels: list[list[int]]) -> bytes:
    """A baseline greyscale JPEG whose 8×8 blocks have the given grey levels (rows of blocks)."""
    rows, cols = len(levels), len(levels[0])
    bw = _BitWriter()
    previous = 0
    for row in levels:
        for level in row:
            dc = 8 * (level - 128)  # FDCT of a flat block, quantiser 1
            diff = dc - previous
            previous = dc
            category = abs(diff).bit_length()
            code, length = _DC_CODES[category]
            bw.write(code, length)
            if category:
                bw.write(diff if diff > 0 else diff + (1 << category) - 1, category)
            code, length = _AC_CODES[0x00]
            bw.write(code, length)
    return b"".join((
        b"\xff\xd8",
        _segment(0xE0, b"JFIF\x00\x01\x01\x01\x00\x48\x00\x48\x00\x00"),  # JFIF 1.01, 72 dpi
        _segment(0xDB, b"\x00" + b"\x01" * 64),  # one 8-bit quantisation table of 1s
        _segment(0xC0, struct.pack(">BHHB", 8, rows * 8, cols * 8, 1) + b"\x01\x11\x00"),
        _segment(0xC4, b"\x00" + bytes(_DC_BITS) + bytes(_DC_VALUES)),
        _segment(0xC4, b"\x10" + bytes(_AC_BITS) + bytes(_AC_VALUES)),
        _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00"),
        bw.finish(),
        b"\xff\xd9",
    ))


def page_jpeg(rng: random.Random, *, width_blocks: int = 12, height_blocks: int = 16) -> bytes:
    """A small photo of a "document page": light paper, darker lines of "text" in random lengths."""
    paper = rng.randint(225, 245)
    levels = [[paper] * width_blocks for _ in range(height_blocks)]
    for row in range(1, height_blocks - 1, 2):
        length = rng.randint(width_blocks // 3, width_blocks - 2)
        for col in range(1, 1 + length):
            levels[row][col] = rng.randint(40, 110)
    return _jpeg(levels)


def scanned_pdf(title: str) -> bytes:
    """A one-page PDF (ASCII title only: PDF string literals here are Latin-1)."""
    return sample_pdf(title)
