"""What the generator tests share besides fixtures: the session's generation options, ZIP helpers."""

from __future__ import annotations

import io
import zipfile
from datetime import date

from portal_sim.generate import GenerateOptions

#: Small but covering every card history (the pattern repeats every 10 residents) and every defect
#: kind (15 % defective, kinds in rotation).
OPTIONS = GenerateOptions(start=date(2026, 11, 1), residents=12, applications=80, seed=20261101, days=30,
                          defect_rate=0.15)


def zip_entries(data: bytes) -> list[zipfile.ZipInfo]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return zf.infolist()
