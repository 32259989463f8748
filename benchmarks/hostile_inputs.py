"""Hostile inputs through the real commands, on the embedded SQLite set-up and on PostgreSQL.

    .venv/bin/python benchmarks/hostile_inputs.py [--modes sqlite,postgres] [--json FILE]

Every input is made here (nothing is downloaded), then given to the product exactly as a user
would: ``catalog-ai ingest`` (with good neighbours in the same call and the same chunk),
``catalog-ai taxonomy import`` and ``catalog-ai catalog import-folder``, each a fresh process.
For each case it prints the exit code, the wall time and the peak RSS of that process (from
``wait4``), whether a Python traceback appeared, the one line the user was told, and, for photos,
what the database says afterwards: each hostile photo's status and reason, and whether any good
neighbour was lost or failed. The loader column times the safe loader and preprocessing alone on
the hostile photo, inside a process of its own (seconds, and how much that process's peak RSS
grew), against the same on a good photo (baseline): the photo's own cost, apart from the ~0.7 GB
and seconds of importing torch and the model that every command pays.

Photos are classified in-process (no broker) by a bundle of the real pretrained
EfficientNet-Lite0 weights with an untrained head: the outcome of a hostile photo does not depend
on the head. PostgreSQL runs use a database of their own, created and dropped here.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "catalog_ai"]
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@dataclass
class Outcome:
    mode: str
    command: str
    case: str
    exit_code: int
    seconds: float
    peak_rss_mb: float
    traceback: bool
    said: str
    db: str = ""
    neighbours: str = ""
    loader_seconds: float | None = None
    loader_rss_mb: float | None = None
    extra: dict = field(default_factory=dict)


def run(cmd: list[str], env: dict[str, str], timeout: float = 600) -> tuple[int, float, float, str, str]:
    """Run one process; exit code, wall seconds, its peak RSS (MiB), stdout, stderr."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=REPO)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        return (proc.returncode, seconds, usage.ru_maxrss / 1024,
                out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"))


def one_line(stdout: str, stderr: str) -> str:
    text = (stderr.strip() or stdout.strip()).splitlines()
    lines = [ln for ln in text if ln.strip() and "it/s" not in ln and "%|" not in ln]
    return (lines[-1] if lines else "").strip()[:160]


# --- hostile photos ---------------------------------------------------------------------------------


def _jpeg(size: tuple[int, int], color=(200, 40, 40), **kw) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG", quality=85, **kw)
    return buf.getvalue()


def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` with a tiny, valid-looking deflate stream."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    raw = zlib.compress(b"\x00" * min(width + 1, 1 << 20) * 4, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def hostile_photos(folder: Path) -> dict[str, Path]:
    """Name -> file for each hostile photo (made here)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    cases: dict[str, bytes | None] = {}
    cases["wide_65000x2.jpg"] = _jpeg((65000, 2))
    cases["tall_2x65000.jpg"] = _jpeg((2, 65000))
    cases["line_400000x1.png"] = _png(Image.new("L", (400000, 1), 128))
    cases["bomb_30000x30000.png"] = _png_claiming(30000, 30000)
    good = _jpeg((640, 480))
    cases["truncated.jpg"] = good[: len(good) // 2]
    cases["empty.jpg"] = b""
    cases["text_named.jpg"] = b"<html><body>not a photo</body></html>\n"
    cases["random_bytes.png"] = os.urandom(4096)
    cases["png16.png"] = _png(Image.new("I;16", (300, 300), 40000))
    cmyk = io.BytesIO()
    Image.new("CMYK", (300, 300), (0, 100, 200, 0)).save(cmyk, "JPEG")
    cases["cmyk.jpg"] = cmyk.getvalue()
    rgba = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    cases["transparent.png"] = _png(rgba)
    frames = [Image.new("P", (200, 200), i) for i in range(3)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:])
    cases["animated.gif"] = gif.getvalue()
    exif = Image.Exif()
    exif[0x0112] = 99  # an orientation that does not exist
    cases["bad_orientation.jpg"] = _jpeg((320, 240), exif=exif.tobytes())
    try:
        avif = io.BytesIO()
        Image.new("RGB", (320, 240), (10, 200, 10)).save(avif, "AVIF")
        cases["photo.avif"] = avif.getvalue()
    except (KeyError, OSError, ValueError):
        pass  # this Pillow has no AVIF encoder
    out = {}
    for name, data in cases.items():
        path = folder / name
        path.write_bytes(data)
        out[name] = path
    big = folder / "oversized_60MiB.jpg"
    with big.open("wb") as f:  # sparse: costs no disk
        f.write(good[:2])
        f.truncate(60 * 1024 * 1024)
    out[big.name] = big
    return out


def good_photos(folder: Path, n: int) -> list[Path]:
    """``n`` distinct ordinary photos (random noise, so no two are ever duplicates)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng()
    paths = []
    for i in range(n):
        p = folder / f"good_{folder.name}_{i}.jpg"
        pixels = rng.integers(0, 256, (360, 480, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "JPEG", quality=85)
        p.write_bytes(buf.getvalue())
        paths.append(p)
    return paths


# The safe loader and preprocessing alone, timed inside the process: its own seconds and how much
# its peak RSS grew (importing torch with preprocess costs ~0.7 GB and seconds, which says
# nothing about the photo).
LOADER = (
    "import json, resource, sys, time\n"
    "from catalog_ai.errors import CatalogAIError\n"
    "from catalog_ai.photos.decode import load_image\n"
    "from catalog_ai.model.preprocess import square\n"
    "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "start = time.perf_counter()\n"
    "try:\n"
    "    square(load_image(sys.argv[1]), 224)\n"
    "    said = 'loaded'\n"
    "except CatalogAIError as e:\n"
    "    said = f'refused: {e}'\n"
    "seconds = time.perf_counter() - start\n"
    "grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before\n"
    "print(json.dumps({'said': said, 'seconds': seconds, 'rss_growth_mb': grew / 1024}))\n"
)


def loader(path: Path, env: dict[str, str]) -> tuple[float | None, float | None, str, bool]:
    """Seconds and peak-RSS growth (MiB) of loading + preprocessing ``path``, what it said, and
    whether a traceback appeared."""
    rc, _, _, out, err = run([sys.executable, "-c", LOADER, str(path)], env, timeout=120)
    try:
        row = json.loads(out.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return None, None, one_line(out, err), "Traceback" in out + err
    return round(row["seconds"], 3), round(row["rss_growth_mb"], 1), row["said"][:160], False


def ingest_said(stdout: str, name: str) -> str:
    """What ``ingest --json`` said about the file ``name``."""
    try:
        data = json.loads(stdout[stdout.index("{"):])
    except ValueError:
        return one_line(stdout, "")
    for row in data.get("failed", []):
        if Path(row["file"]).name == name:
            return f"failed: {row['reason']}"[:160]
    for key in ("ingested", "duplicates"):
        for row in data.get(key, []):
            if Path(row["file"]).name == name:
                return f"{key} (product {row['product_id']})"
    return "not named in the output"


# --- hostile taxonomies -------------------------------------------------------------------------


def hostile_taxonomies(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    texts = {
        "nul_byte.txt": "Fruit > Apple\nFruit > Ba\x00nana\n",
        "escape_codes.txt": "Fruit > \x1b[31mRed\x1b[0m\nFruit > Bell\x07\n",
        "rtl_override.txt": "Fruit > \u202egpj.exe\n",
        "name_300_chars.txt": "Fruit > " + "x" * 300 + "\n",
        "path_over_1024.txt": " > ".join(["a" * 200] * 6) + "\n",
        "google_id_reused.txt": "1 - Fruit\n2 - Fruit > Apple\n2 - Fruit > Pear\n",
        "csv_id_over_64.csv": "id,path\n" + "9" * 80 + ",Fruit > Apple\n",
        "binary_garbage.txt": None,
        "empty.txt": "",
        "only_separators.txt": " > > >\n>\n",
    }
    out = {}
    for name, text in texts.items():
        path = folder / name
        if text is None:
            path.write_bytes(os.urandom(2048))
        else:
            path.write_text(text, encoding="utf-8")
        out[name] = path
    return out


def hostile_folder(root: Path, photo: bytes) -> Path:
    tree = root / "tree"
    (tree / "Fruit" / "Apple").mkdir(parents=True)
    (tree / "Fruit" / "Apple" / "a.jpg").write_bytes(photo)
    (tree / "in_root.jpg").write_bytes(photo)
    (tree / ".hidden" / "Thing").mkdir(parents=True)
    (tree / ".hidden" / "Thing" / "h.jpg").write_bytes(photo)
    outside = root / "outside" / "Secret"
    outside.mkdir(parents=True)
    (outside / "s.jpg").write_bytes(photo)
    (tree / "Escape").symlink_to(root / "outside", target_is_directory=True)
    (tree / "Fruit" / "notes.txt").write_text("not a photo")
    return tree


# --- one mode ---------------------------------------------------------------------------------------


def env_for(mode: str, home: Path, bundle_dir: Path) -> tuple[dict[str, str], str | None]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALOG_AI_")}
    env.update(CATALOG_AI_HOME=str(home), CATALOG_AI_OFFLINE="1", PYTHONUNBUFFERED="1",
               CATALOG_AI_MODEL_DIR=str(bundle_dir.parent))
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    db_name = None
    if mode == "postgres":
        import sqlalchemy as sa

        db_name = f"hostile_{uuid.uuid4().hex[:8]}"
        engine = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{db_name}"'))
        engine.dispose()
        env["CATALOG_AI_DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/{db_name}"
    return env, db_name


def drop_db(db_name: str | None) -> None:
    if not db_name:
        return
    import sqlalchemy as sa

    engine = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
    engine.dispose()


def product_states(env: dict[str, str]) -> dict[str, tuple[str, str | None]]:
    """Original file name -> (status, error) for every product, read from the database."""
    code = (
        "import json\n"
        "from sqlalchemy import select\n"
        "from catalog_ai.db import unit_of_work\n"
        "from catalog_ai.db.models import Product\n"
        "with unit_of_work() as s:\n"
        "    rows = s.execute(select(Product.title, Product.status, Product.error)).all()\n"
        "print(json.dumps([[t, str(st), e] for t, st, e in rows]))\n"
    )
    rc, _, _, out, err = run([sys.executable, "-c", code], env)
    if rc != 0:
        raise SystemExit(f"reading the database failed: {err.strip().splitlines()[-1:]}")
    states: dict[str, tuple[str, str | None]] = {}
    for title, status, error in json.loads(out.strip().splitlines()[-1]):
        states.setdefault(title, (status.split(".")[-1].lower(), error))
    return states


def run_mode(mode: str, work: Path, bundle_dir: Path, version: str) -> list[Outcome]:
    home = work / mode
    home.mkdir(parents=True)
    env, db_name = env_for(mode, home, bundle_dir)
    results: list[Outcome] = []
    try:
        for step in (["db", "upgrade"], ["taxonomy", "import", str(work / "tree.txt")],
                     ["models", "register", str(bundle_dir), "--activate"]):
            rc, _, _, out, err = run(CLI + step, env)
            if rc != 0:
                raise SystemExit(f"{mode}: set-up step {' '.join(step)} failed: {one_line(out, err)}")

        hostile = hostile_photos(work / "photos")
        baseline = good_photos(work / "baseline", 1)[0]
        base_s, base_rss, _, _ = loader(baseline, env)
        for i, (name, path) in enumerate(sorted(hostile.items())):
            neighbours = good_photos(work / f"good_{mode}_{i}", 3)
            # Hostile photo in the middle of its chunk: its neighbours share the batch.
            args = [str(neighbours[0]), str(path), str(neighbours[1]), str(neighbours[2])]
            rc, s, rss, out, err = run(CLI + ["ingest", "--json", *args], env)
            states = product_states(env)
            status, reason = states.get(Path(name).stem, ("(no product)", None))
            lost = [p.stem for p in neighbours if p.stem not in states]
            bad = [p.stem for p in neighbours if states.get(p.stem, ("",))[0] in {"failed", "pending", "processing"}]
            ls, lrss, lsaid, ltb = loader(path, env)
            results.append(Outcome(
                mode=mode, command="ingest", case=name, exit_code=rc, seconds=round(s, 2),
                peak_rss_mb=round(rss), traceback="Traceback" in out + err,
                said=ingest_said(out, name),
                db=f"{status}: {reason}" if reason else status,
                neighbours="ok" if not lost and not bad else f"lost {lost} failed/pending {bad}",
                loader_seconds=ls, loader_rss_mb=lrss,
                extra={"loader_said": lsaid, "loader_traceback": ltb,
                       "baseline_seconds": base_s, "baseline_rss_mb": base_rss},
            ))

        # Paths that are not photos at all, beside a good one.
        good = good_photos(work / f"good_{mode}_paths", 1)[0]
        for case, extra_path in (("missing path", work / "missing" / "x.jpg"),
                                 ("a directory", work / "photos")):
            rc, s, rss, out, err = run(CLI + ["ingest", str(good), str(extra_path)], env)
            states = product_states(env)
            results.append(Outcome(
                mode=mode, command="ingest", case=case, exit_code=rc, seconds=round(s, 2),
                peak_rss_mb=round(rss), traceback="Traceback" in out + err, said=one_line(out, err),
                neighbours="ok" if states.get(good.stem, ("",))[0] not in {"", "failed", "pending"}
                else f"good photo: {states.get(good.stem)}",
            ))

        # The same corrupt file twice: one failed product, not two.
        before = len(product_states(env))
        run(CLI + ["ingest", str(hostile["truncated.jpg"])], env)
        after = len(product_states(env))
        results.append(Outcome(mode=mode, command="ingest", case="truncated.jpg again",
                               exit_code=0, seconds=0, peak_rss_mb=0, traceback=False,
                               said=f"products before {before}, after {after}"))

        # Two ingests racing over overlapping photos.
        results.append(race(mode, env, work))

        for name, path in sorted(hostile_taxonomies(work / "taxonomies").items()):
            rc, s, rss, out, err = run(CLI + ["taxonomy", "import", str(path)], env)
            results.append(Outcome(mode=mode, command="taxonomy import", case=name, exit_code=rc,
                                   seconds=round(s, 2), peak_rss_mb=round(rss),
                                   traceback="Traceback" in out + err, said=one_line(out, err)))

        tree = hostile_folder(work / f"folder_{mode}", _jpeg((320, 240)))
        rc, s, rss, out, err = run(CLI + ["catalog", "import-folder", str(tree)], env)
        results.append(Outcome(mode=mode, command="catalog import-folder",
                               case="symlink out, root photo, dot-folder, .txt", exit_code=rc,
                               seconds=round(s, 2), peak_rss_mb=round(rss),
                               traceback="Traceback" in out + err,
                               said=" | ".join(ln.strip() for ln in (out + err).splitlines()
                                               if ln.strip() and "%|" not in ln)[-300:]))
    finally:
        drop_db(db_name)
    return results


def race(mode: str, env: dict[str, str], work: Path) -> Outcome:
    shared = good_photos(work / f"race_{mode}" / "shared", 50)
    own = [good_photos(work / f"race_{mode}" / f"own{k}", 20) for k in (0, 1)]
    start = time.perf_counter()
    procs = []
    for k in (0, 1):
        files = [str(p) for p in shared] + [str(p) for p in own[k]]
        procs.append(subprocess.Popen(CLI + ["ingest", "--json", "--chunk-size", "8", *files], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO))
    outs = [p.communicate(timeout=900) for p in procs]
    seconds = time.perf_counter() - start
    states = product_states(env)
    expected = {p.stem for p in shared} | {p.stem for ps in own for p in ps}
    missing = sorted(expected - set(states))
    tb = any(b"Traceback" in o + e for o, e in outs)
    return Outcome(mode=mode, command="2 x ingest", case="50 shared + 20 own photos each",
                   exit_code=max(p.returncode for p in procs), seconds=round(seconds, 2), peak_rss_mb=0,
                   traceback=tb, said=f"exit codes {[p.returncode for p in procs]}",
                   db=f"{len(expected) - len(missing)}/{len(expected)} photos have a product",
                   neighbours="ok" if not missing else f"lost {missing[:5]}")


# --- set-up and report -------------------------------------------------------------------------------


def build_bundle(out: Path) -> tuple[Path, str]:
    sys.path.insert(0, str(REPO))
    from catalog_ai.backbones import create_backbone, get_backbone
    from catalog_ai.model.bundle import ModelBundle, write_bundle
    from catalog_ai.model.decision import Thresholds
    from catalog_ai.model.network import HierarchicalClassifier
    from catalog_ai.taxonomy import parse_path_lines

    taxonomy = parse_path_lines("Fruit > Apple\nFruit > Pear\nVegetables > Carrot\n")
    spec = get_backbone("efficientnet_lite0")
    network = HierarchicalClassifier(
        create_backbone("efficientnet_lite0", pretrained=True), spec.embedding_dim,
        len(taxonomy.leaf_ids),
    )
    write_bundle(out, state_dict=network.state_dict(), backbone="efficientnet_lite0",
                 embedding_dim=spec.embedding_dim, preprocessing=spec.preprocessing,
                 image_size=spec.preprocessing.input_size, eval_crop_pct=spec.preprocessing.crop_pct,
                 temperature=1.0, thresholds=Thresholds(decision=0.5, auto_accept=0.99),
                 taxonomy=taxonomy, metrics={}, training={"note": "benchmark: untrained head"})
    return out, ModelBundle.load(out).version


def print_table(results: list[Outcome]) -> None:
    header = ("mode", "command", "case", "exit", "s", "RSS MB", "tb", "loader s / +MB", "database",
              "neighbours", "said")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in results:
        loader = f"{r.loader_seconds}/{r.loader_rss_mb}" if r.loader_seconds is not None else ""
        cells = (r.mode, r.command, r.case, r.exit_code, r.seconds, r.peak_rss_mb,
                 "YES" if r.traceback else "no", loader, r.db, r.neighbours, r.said)
        print("| " + " | ".join(str(c).replace("|", "/").replace("\n", " ") for c in cells) + " |")
    base = next((r.extra for r in results if "baseline_seconds" in r.extra), None)
    if base:
        print(f"\nloader baseline (a good 480x360 JPEG): {base['baseline_seconds']} s, "
              f"peak RSS +{base['baseline_rss_mb']} MB")
    bad = [r for r in results if r.traceback or r.extra.get("loader_traceback")
           or (r.neighbours and r.neighbours != "ok")]
    print(f"\n{len(results)} cases; raw tracebacks or harmed neighbours: {len(bad)}")
    for r in bad:
        print(f"  {r.mode} {r.command} {r.case}: traceback={r.traceback} neighbours={r.neighbours}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", default="sqlite,postgres")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hostile_"))
    try:
        (work / "tree.txt").write_text("Fruit > Apple\nFruit > Pear\nVegetables > Carrot\n")
        bundle_dir, version = build_bundle(work / "models" / "bench-lite0")
        results: list[Outcome] = []
        for mode in args.modes.split(","):
            print(f"== {mode} ==", file=sys.stderr, flush=True)
            results += run_mode(mode, work, bundle_dir, version)
        print_table(results)
        if args.json:
            args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
