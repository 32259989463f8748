"""Alternatives to the default few-shot rules, measured on the base model of benchmarks/fewshot.py.

    .venv/bin/python benchmarks/fewshot.py --out /work/bench/fewshot          # trains the base model
    .venv/bin/python benchmarks/fewshot_variants.py --model /work/bench/fewshot/base

Embeds the val photos, the held-out leaves' train photos (and their mirror images) and the 81
catalog photos (with mirror images and crops) once, then replays the k = 1 / k = 5 draws of
benchmarks/fewshot.py (same seeds, same photos) under other rules, in memory:

- ``default``: the product's rule (fitted fusion + nearest-prototype gate, ``catalog_ai.model.fusion.fuse``);
  it must reproduce benchmarks/fewshot.py's figures, which checks the replay;
- ``no gate``: the fitted fusion alone;
- ``size-corrected gate``: the gate compares ``x · mean / |mu|`` instead of cosines to the
  normalised mean, where ``|mu|^2 = (n |mean|^2 - 1) / (n - 1)`` estimates the length of the
  true mean direction (a mean of few unit vectors is shorter than that of many, which handicaps
  a prototype made from 5 photos against one made from 30); new categories take the median of
  the trained categories' estimates;
- ``mirrored examples``: each example photo counts as the mean of itself and its mirror image;
- ``head veto tau``: a new category takes a photo only when it passes the gate and the head's
  calibrated top probability is below tau.

Catalog-photo one-shot (nearest prototype among the 81 catalog photos): the photo alone, with its
mirror image, with mirrored crops, and with the catalog photos centred on their own mean (they
are studio shots, a different domain from shelf photos).

Looking at these on val is a look at val: none of them became the default because of it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import ImageOps

from catalog_ai.photos import decode as images
from catalog_ai.model.fusion import fuse
from catalog_ai.inference.predictor import Predictor
from catalog_ai.model.preprocess import square
from catalog_ai.model.prototypes import normalise_embeddings
from catalog_ai.taxonomy import format_path, scan_folder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fewshot import catalog_photos, open_replay, replay_args  # noqa: E402  (the same draws and held-out leaves)


def views(predictor: Predictor, path: Path, *, mirror: bool, crops: tuple[float, ...] = ()) -> list[np.ndarray]:
    img = images.load_image(path, target_size=predictor.square_size)
    out = [img] + ([ImageOps.mirror(img)] if mirror else [])
    w, h = img.size
    for s in crops:
        cw, ch = int(w * s), int(h * s)
        for x, y in [((w - cw) // 2, (h - ch) // 2), (0, 0), (w - cw, 0), (0, h - ch), (w - cw, h - ch)]:
            c = img.crop((x, y, x + cw, y + ch))
            out += [c, ImageOps.mirror(c)]
    return [np.ascontiguousarray(square(v, predictor.square_size, predictor.interpolation).transpose(2, 0, 1))
            for v in out]


def embed(predictor: Predictor, squares: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Raw embeddings and temperature-scaled head logits."""
    emb, logits = [], []
    for i in range(0, len(squares), predictor.batch_size):
        e, lg = predictor.embed_logits(squares[i : i + predictor.batch_size])
        emb.append(e.float().cpu().numpy())
        logits.append((lg.double() / predictor.bundle.temperature).cpu().numpy())
    return np.concatenate(emb), np.concatenate(logits)


def main(argv: list[str] | None = None) -> int:
    args = replay_args(__doc__).parse_args(argv)
    opened = open_replay(args)
    if opened is None:
        return 2
    root, predictor, head_leaves, novel = opened
    memory = predictor.prototypes
    train = scan_folder(root / "train")
    val = [(f, format_path(p)) for f, p in scan_folder(root / "val").files]
    truth = np.array([t for _, t in val])
    is_novel = np.isin(truth, novel)
    is_base = ~is_novel

    val_emb, head = embed(predictor, [predictor.prepare(f) for f, _ in val])
    q = normalise_embeddings(val_emb, memory.center)
    base_sums = memory.sums[[memory.paths.index(p) for p in head_leaves]]
    base_counts = memory.counts[[memory.paths.index(p) for p in head_leaves]].astype(np.float64)
    base_proto = base_sums / np.linalg.norm(base_sums, axis=1, keepdims=True)
    cos_base = q @ base_proto.T
    base_mean = base_sums / base_counts[:, None]
    mu2_base = (base_counts * (base_mean**2).sum(1) - 1) / (base_counts - 1)
    mu2_new = float(np.median(mu2_base))
    head_top = torch.from_numpy(head).softmax(1).max(1).values.numpy()

    by_leaf: dict[str, list[Path]] = {}
    for f, p in train.files:
        if format_path(p) in novel:
            by_leaf.setdefault(format_path(p), []).append(f)
    files = [f for leaf in novel for f in by_leaf[leaf]]
    file_index = {f: i for i, f in enumerate(files)}
    ex_emb, _ = embed(predictor, [v for f in files for v in views(predictor, f, mirror=True)])
    ex = normalise_embeddings(ex_emb, memory.center).reshape(len(files), 2, -1)

    names = head_leaves + novel
    before = (np.array(head_leaves)[head.argmax(1)] == truth)[is_base].mean()

    def replay(k: int, rule: str, tau: float = 1.0) -> dict:
        runs = []
        for draw in range(args.draws):
            rng = np.random.default_rng(1000 * k + draw)  # as benchmarks/fewshot.py
            sums, counts = [], []
            for leaf in novel:
                chosen = rng.choice(by_leaf[leaf], size=min(k, len(by_leaf[leaf])), replace=False)
                rows = ex[[file_index[f] for f in chosen]]
                vec = rows.mean(1) if rule == "mirrored examples" else rows[:, 0]
                sums.append(vec.sum(0))
                counts.append(len(chosen))
            sums_n, counts_n = np.array(sums), np.array(counts, dtype=np.float64)
            cos_new = q @ (sums_n / np.linalg.norm(sums_n, axis=1, keepdims=True)).T
            if rule == "size-corrected gate":
                g_new = q @ (sums_n / counts_n[:, None]).T / np.sqrt(mu2_new)
                g_base = q @ base_mean.T / np.sqrt(mu2_base)[None]
                new_logits = memory.fusion.scale * cos_new + memory.fusion.bias
                new_logits = np.where(g_new > g_base.max(1, keepdims=True), new_logits, -np.inf)
                pred_idx = np.concatenate([head, new_logits], 1).argmax(1)
            elif rule == "head veto":
                take = (cos_new.max(1) > cos_base.max(1)) & (head_top < tau)
                pred_idx = np.where(take, len(head_leaves) + cos_new.argmax(1), head.argmax(1))
            else:
                params = type(memory.fusion).from_dict({**memory.fusion.to_dict(), "nearest_gate": rule != "no gate"})
                probs = fuse(torch.from_numpy(head), torch.from_numpy(cos_new), params,
                             torch.from_numpy(cos_base.max(1)))
                pred_idx = probs.argmax(1).numpy()
            ok = np.array(names)[pred_idx] == truth
            runs.append((ok[is_novel].mean(), ok[is_base].mean()))
        arr = np.array(runs)
        return {"held_out_leaf_accuracy": round(float(arr[:, 0].mean()), 4),
                "base_drop_points": round(100 * (before - float(arr[:, 1].mean())), 2)}

    figures: dict = {"base_accuracy_before": round(float(before), 4), "mu2_trained_median": round(mu2_new, 3)}
    for k in (1, 5):
        for rule in ("default", "no gate", "size-corrected gate", "mirrored examples"):
            figures[f"k{k} {rule}"] = replay(k, rule)
        for tau in (0.7, 0.9):
            figures[f"k{k} head veto {tau}"] = replay(k, "head veto", tau)

    iconic, icon_labels = catalog_photos(root, sorted({format_path(p) for _, p in scan_folder(root / "train").files}))
    icon_labels = np.array(icon_labels)
    icon_views = [views(predictor, f, mirror=True, crops=(0.8,)) for f in iconic]
    per = len(icon_views[0])
    icon_emb, _ = embed(predictor, [v for vs in icon_views for v in vs])
    icon_emb = icon_emb.reshape(len(iconic), per, -1)
    labels = sorted(set(icon_labels))
    for name, sel, center in [("catalog photo alone", slice(0, 1), memory.center),
                              ("with its mirror image", slice(0, 2), memory.center),
                              ("with mirrored crops (80 %)", slice(0, per), memory.center),
                              ("centred on the catalog photos' mean", slice(0, 1), icon_emb[:, 0].mean(0))]:
        vec = normalise_embeddings(icon_emb[:, sel].reshape(-1, icon_emb.shape[-1]), center)
        vec = vec.reshape(len(iconic), -1, vec.shape[-1]).mean(1)
        proto = np.stack([vec[icon_labels == lab].sum(0) for lab in labels])
        proto /= np.linalg.norm(proto, axis=1, keepdims=True)
        pred = np.array(labels)[(q @ proto.T).argmax(1)]
        figures[f"one-shot {name}"] = {"all_leaves": round(float((pred == truth).mean()), 4),
                                       "held_out_leaves": round(float((pred == truth)[is_novel].mean()), 4)}
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
