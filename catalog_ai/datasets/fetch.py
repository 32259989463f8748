"""The example dataset: Grocery Store (Klasson et al., WACV 2019, MIT licence).

Only the train and val splits and the catalog ("iconic") photos are ever fetched. The official
test split is held back for independent evaluation: the download skips it on purpose.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

from catalog_ai.datasets.download import Artefact, download
from catalog_ai.errors import DatasetError
from catalog_ai.settings import get_settings

__all__ = [
    "GROCERY_STORE_SHA256",
    "GROCERY_STORE_URL",
    "check_grocery_layout",
    "fetch_grocery_store",
    "find_local_grocery_store",
    "grocery_store_artefact",
]

GROCERY_STORE_URL = (
    "https://github.com/marcusklasson/GroceryStoreDataset/archive/refs/heads/master.zip"
)
# The archive's SHA-256 is not pinned here: no copy of it could be downloaded where this was
# written (the shared copy is already extracted), and a branch's archive changes whenever the
# branch does. Pin it with CATALOG_AI_GROCERY_STORE_SHA256; unpinned, a download logs its digest.
GROCERY_STORE_SHA256: str | None = None
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


def grocery_store_artefact() -> Artefact:
    """The dataset's archive, with the digest pinned by the settings (if any)."""
    return Artefact(
        name="GroceryStoreDataset master.zip",
        url=GROCERY_STORE_URL,
        sha256=get_settings().grocery_store_sha256 or GROCERY_STORE_SHA256,
        pin_setting="CATALOG_AI_GROCERY_STORE_SHA256",
    )


def fetch_grocery_store(
    *,
    dest: Path | None = None,
    from_dir: Path | None = None,
    progress: bool = False,
    source: Artefact | None = None,
) -> Path:
    """A usable copy of the dataset: ``from_dir`` in place, an earlier download, or a new download
    (of ``source``, default :func:`grocery_store_artefact`), checked against its SHA-256."""
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
        download(source or grocery_store_artefact(), archive, progress=progress)
        _extract_public_splits(archive, dest)
    return check_grocery_layout(dest)


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
