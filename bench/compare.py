"""Two benchmark runs side by side: every figure of ``bench/summary.py`` in A and B, and the change.

The change is ``(B − A) / A`` in per cent, marked "better" or "worse" by the figure's direction
(packages per second up is better, milliseconds and MiB down are better). Both files are read with
today's figure definitions. A warning line says when the two runs are not comparable as they stand
(a quick run, a dirty work tree, another number of cpus, another Python, a failed benchmark).
``--all`` adds every number of the raw benchmark outputs that both runs have.

Usage: ``python bench/compare.py A.json B.json [--all] [--markdown]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from summary import describe, figures, load, number, table


def change(a: float | None, b: float | None, higher_is_better: bool) -> str:
    if a is None or b is None:
        return ""
    if a == 0:
        return "" if b == 0 else "from 0"
    pct = 100 * (b - a) / abs(a)
    if round(pct, 1) == 0:
        return "0.0 %"
    better = (pct > 0) == higher_is_better
    return f"{pct:+.1f} % ({'better' if better else 'worse'})"


def warnings(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    out = []
    for name, r in (("A", a), ("B", b)):
        if r.get("quick"):
            out.append(f"{name} is a quick run: its figures say nothing about speed")
        if (r.get("commit") or {}).get("dirty"):
            out.append(f"{name} was measured with uncommitted changes")
        if r.get("failed"):
            out.append(f"{name}: failed benchmarks {', '.join(r['failed'])}")
    for key in ("cpus", "python"):
        va, vb = (a.get("machine") or {}).get(key), (b.get("machine") or {}).get(key)
        if va != vb:
            out.append(f"different {key}: {va} / {vb}")
    return out


def leaves(data: Any, prefix: str = "") -> Iterator[tuple[str, float]]:
    """Every number in a raw benchmark output, by its dotted path."""
    if isinstance(data, dict):
        for k, v in data.items():
            yield from leaves(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from leaves(v, f"{prefix}[{i}]")
    elif isinstance(data, int | float) and not isinstance(data, bool):
        yield prefix, float(data)


def render(a: dict[str, Any], b: dict[str, Any], *, all_numbers: bool = False, markdown: bool = False) -> str:
    fa = {f.key: f for f in figures(a.get("benchmarks") or {})}
    fb = {f.key: f for f in figures(b.get("benchmarks") or {})}
    rows = []
    for key in [*fa, *(k for k in fb if k not in fa)]:
        f = fa.get(key) or fb[key]
        va, vb = fa[key].value if key in fa else None, fb[key].value if key in fb else None
        rows.append([f.label, number(va, f.unit), number(vb, f.unit), f.unit, change(va, vb, f.higher_is_better),
                     f.aim])
    text = [f"A: {describe(a)}", f"B: {describe(b)}"]
    text += [f"WARNING: {w}" for w in warnings(a, b)]
    text += ["", table(["figure", "A", "B", "unit", "B vs A", "aim (issue 19)"], rows, markdown=markdown,
                       right=(1, 2, 4))]
    if all_numbers:
        la, lb = dict(leaves(a.get("benchmarks") or {})), dict(leaves(b.get("benchmarks") or {}))
        raw = [[k, f"{la[k]:g}", f"{lb[k]:g}", change(la[k], lb[k], True).split(" (")[0]]
               for k in la if k in lb]
        text += ["", "every number of the raw outputs (change without a direction):", "",
                 table(["raw figure", "A", "B", "B vs A"], raw, markdown=markdown, right=(1, 2, 3))]
    return "\n".join(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("a", type=Path, help="the earlier run (results file)")
    ap.add_argument("b", type=Path, help="the later run (results file)")
    ap.add_argument("--all", action="store_true", help="also every number of the raw benchmark outputs")
    ap.add_argument("--markdown", action="store_true", help="Markdown tables (for docs/benchmarks.md)")
    args = ap.parse_args(argv)
    print(render(load(args.a), load(args.b), all_numbers=args.all, markdown=args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
