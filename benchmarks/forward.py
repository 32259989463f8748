"""Raw network forward speed (photos/s) per backbone and input size, repeated, on this machine.

    .venv/bin/python benchmarks/forward.py [efficientnet_lite0:224 efficientnet_lite2:260 ...]
        [--batch-size 8] [--seconds 6] [--repeats 3] [--threads 2] [--frozen] [--compile]

The backbone alone (no head, no decoding), channels-last, inference mode, random input: a quick
way to tell whether a machine is slow for one network before blaming the pipeline. Each pair is
timed ``--repeats`` times, interleaved, so a noisy machine shows as a spread, not as a bias.
``--frozen`` also times each network as serving runs it: traced and frozen
(:mod:`catalog_ai.inference.frozen`); ``--compile`` times ``torch.compile`` (needs a C++ compiler)
and prints how long compiling took.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

from catalog_ai.backbones import create_backbone
from catalog_ai.inference.frozen import freeze_backbone


def photos_per_second(net: torch.nn.Module, size: int, batch_size: int, seconds: float) -> float:
    x = torch.randn(batch_size, 3, size, size).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        net(x)  # warm-up
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            net(x)
            n += batch_size
    return n / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pairs", nargs="*", default=["efficientnet_lite0:224", "efficientnet_lite2:224",
                                                     "efficientnet_lite2:260"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 2))
    parser.add_argument("--frozen", action="store_true", help="also time the frozen graph of each")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of each")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    pairs = [(name, int(size)) for name, size in (p.rsplit(":", 1) for p in args.pairs)]
    nets = {name: create_backbone(name, pretrained=False).eval().to(memory_format=torch.channels_last)
            for name in {n for n, _ in pairs}}
    runs = {f"{n}:{s}": (nets[n], s) for n, s in pairs}
    if args.frozen:
        for name, size in pairs:
            example = torch.randn(args.batch_size, 3, size, size).contiguous(memory_format=torch.channels_last)
            frozen = freeze_backbone(nets[name], example)
            if frozen is None:
                print(f"{name}:{size} could not be frozen", file=sys.stderr)
            else:
                runs[f"{name}:{size}:frozen"] = (frozen, size)
    if args.compile:
        for name, size in pairs:
            compiled = torch.compile(nets[name])
            example = torch.randn(args.batch_size, 3, size, size).contiguous(memory_format=torch.channels_last)
            start = time.perf_counter()
            with torch.inference_mode():
                compiled(example)
            print(json.dumps({"network": f"{name}:{size}:compiled",
                              "compile_seconds": round(time.perf_counter() - start, 1)}), flush=True)
            runs[f"{name}:{size}:compiled"] = (compiled, size)
    results: dict[str, list[float]] = {key: [] for key in runs}
    for _ in range(args.repeats):
        for key, (net, size) in runs.items():
            results[key].append(round(photos_per_second(net, size, args.batch_size, args.seconds), 1))
    for key, values in results.items():
        print(json.dumps({"network": key, "batch_size": args.batch_size, "threads": args.threads,
                          "photos_per_s": values, "median": sorted(values)[len(values) // 2]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
