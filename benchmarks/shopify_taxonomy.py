"""`catalog-ai taxonomy import` of a Shopify-size taxonomy file, end to end.

    .venv/bin/python benchmarks/shopify_taxonomy.py [--categories 10000] [--repeats 5] [--json F]

Writes a generated file in Shopify's published text format (``gid://shopify/TaxonomyCategory/
<id> : A > B > C``, GIDs padded as in ``categories.txt``, every parent listed, 7 levels deep)
and, beside it, the same tree as Shopify's ``categories.json``. Each repeat runs the real command
(``python -m catalog_ai taxonomy import FILE``) as a new process on a new, empty SQLite catalog
and times it from start to exit, so the figure includes Python's start-up, the CLI's imports,
the migration of the new database, the parse and the inserts. It also times the parse alone
(``load_taxonomy``) in this process. Medians are reported, with the import's CPU time (user +
system of the child process), which a busy shared machine inflates much less than wall time.
Takes about 30 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PREFIX = "gid://shopify/TaxonomyCategory/"
# Children per category at each depth: a full tree of this shape has 11,832 categories; the first
# N in depth-first order (parents always come first) are written, so every depth down to 7 is
# present as long as N is above 7.
BRANCHING = (12, 5, 4, 3, 3, 2, 1)
WORDS = ("Supplies", "Accessories", "Equipment", "Parts", "Care", "Tools", "Kits", "Sets")


def generate(n: int) -> list[tuple[str, list[str]]]:
    """(short id, path) of ``n`` categories in depth-first order."""
    out: list[tuple[str, list[str]]] = []

    def walk(short: str, path: list[str], depth: int) -> None:
        if len(out) >= n:
            return
        out.append((short, path))
        if depth < len(BRANCHING):
            for k in range(1, BRANCHING[depth] + 1):
                walk(
                    f"{short}-{k}", [*path, f"{path[-1].split()[0]} {WORDS[k % 8]} {k}"], depth + 1
                )

    for v in range(BRANCHING[0]):
        prefix = chr(ord("a") + v) * 2
        walk(prefix, [f"Vertical {prefix.upper()} Goods"], 1)
    return out[:n]


def write_text(path: Path, rows: list[tuple[str, list[str]]]) -> None:
    lines = ["# Shopify Product Taxonomy - Categories: benchmark", "# Format: {GID} : {path}", ""]
    lines += [f"{(PREFIX + short).ljust(48)} : {' > '.join(p)}" for short, p in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_json(path: Path, rows: list[tuple[str, list[str]]]) -> None:
    verticals: dict[str, list[dict]] = {}
    for short, p in rows:
        parent = short.rsplit("-", 1)[0] if "-" in short else None
        verticals.setdefault(short.split("-")[0], []).append(
            {
                "id": PREFIX + short,
                "level": len(p) - 1,
                "name": p[-1],
                "full_name": " > ".join(p),
                "parent_id": PREFIX + parent if parent else None,
                "attributes": [],
                "children": [],
                "ancestors": [],
            }
        )
    data = {
        "version": "benchmark",
        "verticals": [
            {"name": cats[0]["name"], "prefix": prefix, "categories": cats}
            for prefix, cats in verticals.items()
        ],
    }
    path.write_text(json.dumps(data), encoding="utf-8")


def time_cli(file: Path, base: Path, repeat: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system) of one import in a new process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALOG_AI_")}
    env["CATALOG_AI_HOME"] = str(base / f"home{repeat}")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "catalog_ai", "taxonomy", "import", str(file)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"taxonomy import failed: {proc.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--categories", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    from catalog_ai.taxonomy import load_taxonomy

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        rows = generate(args.categories)
        text, js = base / "categories.txt", base / "categories.json"
        write_text(text, rows)
        write_json(js, rows)
        tree = load_taxonomy(text)
        assert len(tree) == args.categories and tree.max_depth == len(BRANCHING), tree
        result: dict[str, object] = {
            "categories": len(tree),
            "max_depth": tree.max_depth,
            "text_bytes": text.stat().st_size,
        }
        for name, file in (("text", text), ("json", js)):
            parse = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                load_taxonomy(file)
                parse.append(time.perf_counter() - start)
            runs = [time_cli(file, base / name, r) for r in range(args.repeats)]
            wall = [w for w, _ in runs]
            result[name] = {
                "parse_s": round(statistics.median(parse), 3),
                "cli_import_s": round(statistics.median(wall), 3),
                "cli_import_min_s": round(min(wall), 3),
                "cli_import_max_s": round(max(wall), 3),
                "cli_import_cpu_s": round(statistics.median(c for _, c in runs), 3),
            }
        result["load_average_1m"] = round(os.getloadavg()[0], 2)
        result["cpus"] = os.cpu_count()
    print(json.dumps(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
