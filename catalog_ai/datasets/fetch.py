"""The example dataset: Grocery Store (Klasson et al., WACV 2019, MIT licence).

Only the train and val splits and the catalog ("iconic") photos are ever fetched. The official
test split is held back for independent evaluation: the download skips it on purpose.
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from catalog_ai.errors import DatasetError
from catalog_ai.progress import progress_bar
from catalog_ai.settings import get_settings

__all__ = [
    "GROCERY_STORE_URL",
    "check_grocery_layout",
    "fetch_grocery_store",
    "find_local_grocery_store",
]

GROCERY_STORE_URL = (
    "https://github.com/marcusklasson/GroceryStoreDataset/archive/refs/heads/master.zip"
)
_KEEP = ("train/", "val/", "iconic-images-and-descriptions/", "classes.csv", "train.txt", "val.txt")


def check_grocery_layout(root: Path) -> Path:
    root = Path(root)
    missing = [name for name in ("train", "val") if not (root / name).is_dir()]
    if missing:
        raise DatasetError(
            f"{root} is not a Grocery Store dataset copy: missing {', '.join(missing)}/ "
            "(expected train/ and val/ folder trees, e.g. train/Fruit/Apple/Granny-Smith/*.jpg)"
        )
    return root


def find_local_grocery_store(start: Path | None = None) -> Path | None:
    """The shared copy beside the checkout (``../shared/datasets/grocery-store``), if any."""
    here = Path(start or Path.cwd()).resolve()
    for base in (here, *here.parents):
        candidate = base.parent / "shared" / "datasets" / "grocery-store"
        if (candidate / "train").is_dir():
            return candidate
    return None


def fetch_grocery_store(
    *, dest: Path | None = None, from_dir: Path | None = None, progress: bool = False
) -> Path:
    """A usable copy of the dataset: ``from_dir`` in place, an earlier download, or a new download."""
    if from_dir is not None:
        return check_grocery_layout(from_dir)
    dest = Path(dest or get_settings().home / "datasets" / "grocery-store")
    if (dest / "train").is_dir() and (dest / "val").is_dir():
        return dest
    if get_settings().offline:
        raise DatasetError(
            "the Grocery Store dataset is not here and CATALOG_AI_OFFLINE is set; "
            "pass a local copy with --from DIR"
        )
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "grocery.zip"
        _download(GROCERY_STORE_URL, archive, progress=progress)
        _extract_public_splits(archive, dest)
    return check_grocery_layout(dest)


def _download(url: str, target: Path, *, progress: bool) -> None:
    try:
        with urllib.request.urlopen(url, timeout=30) as response, target.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            with progress_bar(total=total, desc="downloading", unit="B", enable=progress) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DatasetError(
            f"could not download the Grocery Store dataset from {url} ({exc}); "
            "this machine may be offline: pass a local copy with --from DIR"
        ) from exc


def _extract_public_splits(archive: Path, dest: Path) -> None:
    tmp_dest = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp_dest, ignore_errors=True)
    with zipfile.ZipFile(archive) as zf:
        for member in zf.infolist():
            # GroceryStoreDataset-master/dataset/<rel>
            parts = member.filename.split("/", 2)
            if len(parts) < 3 or parts[1] != "dataset" or member.is_dir():
                continue
            rel = parts[2]
            if not rel.startswith(_KEEP) or ".." in rel.split("/"):
                continue  # the test split (and anything else) is never extracted
            target = tmp_dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out)
    check_grocery_layout(tmp_dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp_dest.replace(dest)
