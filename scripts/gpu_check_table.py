#!/usr/bin/env python3
"""Part of scripts/gpu-check.sh: the one table, from the files the check wrote in OUT_DIR.

  python3 scripts/gpu_check_table.py OUT_DIR
"""

from __future__ import annotations

import csv
import json
import re
import statistics
import sys
from pathlib import Path


def read(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


def main() -> int:
    out = Path(sys.argv[1])
    print("| check | figure | target |")
    print("|---|---|---|")
    build = re.search(r"engine build: (\d+) s with (\d+) cores", read(out / "setup.log"))
    engine = read(out / "engine.txt")
    cuda = re.search(r"^cuda: .*$", engine, re.M)
    if build:
        print(f"| CUDA engine build (llama.cpp, cpu+cuda) | {build[1]} s on {build[2]} cores; {cuda[0] if cuda else '?'} | builds |")
    pinned = engine.split("CUDA_VISIBLE_DEVICES=")[-1] if "CUDA_VISIBLE_DEVICES=" in engine else ""
    seen = re.findall(r"^\s*(CUDA\d+): (.*)$", pinned, re.M)
    print(f"| llama-server --list-devices under the UUID pin | {'; '.join(f'{a}: {b}' for a, b in seen) or 'none'} | exactly CUDA0 |")
    if (out / "devices.json").is_file():
        for d in json.loads((out / "devices.json").read_text()):
            if d["kind"] == "cpu":
                continue
            t = d.get("telemetry") or {}
            usable = ", ".join(f"{b['backend']}{'' if b['usable'] else ' (unusable: ' + b['reason'] + ')'}" for b in d["backends"])
            print(f"| discovery: {d['id']} {d['kind']} {d['model']} | {d['memory_free_bytes'] / 2**30:.1f}/{d['memory_total_bytes'] / 2**30:.1f} GiB free, "
                  f"util {t.get('utilization_ratio')}, {t.get('temperature_celsius')} °C, {t.get('power_watts')} W, "
                  f"{d['tops']['int8_tops']} TOPS ({d['tops']['source']}); backends {usable} | live NVML |")
    if (out / "generation.json").is_file():
        g = json.loads((out / "generation.json").read_text())["median"]
        inter = json.loads((out / "generation.json").read_text())["ttft_interleaved"]
        for n in (1, 4):
            s, d = g[f"switchyard@{n}"]["tok_s"], g[f"direct@{n}"]["tok_s"]
            print(f"| generation {n} stream(s), Switchyard / direct | {s:.1f} / {d:.1f} tok/s = {s / d:.3f}x | >= 0.97x |")
        print(f"| TTFT p50 interleaved, Switchyard / direct | {inter['switchyard']:.1f} / {inter['direct']:.1f} ms | + < 5 ms |")
    e = json.loads(read(out / "embeddings.json") or "{}")
    if "skipped" in e:
        print(f"| embeddings ORT CUDA | not run: {e['skipped']} | |")
    elif e:
        print(f"| embeddings batch 32, Switchyard (on {e['placed']}) / direct ORT CUDA | {e['switchyard']:.0f} / {e['direct']:.0f} /s = {e['switchyard'] / e['direct']:.2f}x | |")
    rows = [r for r in csv.reader(open(out / "nvml.csv")) if len(r) >= 6] if (out / "nvml.csv").is_file() else []
    if rows:
        num = lambda r, i: float(r[i]) if r[i].strip().replace(".", "", 1).isdigit() else 0.0  # noqa: E731
        util = [num(r, 1) for r in rows]
        used = [num(r, 2) for r in rows]
        total = num(rows[0], 3) or 1.0
        busy = [u for u in util if u > 0]
        print(f"| GPU utilisation while busy (p50 / max), {len(rows)} samples | {statistics.median(busy or [0]):.0f} / {max(util):.0f} % | |")
        print(f"| VRAM used (max) | {max(used):.0f} / {total:.0f} MiB = {100 * max(used) / total:.1f} % | < 90 % |")
        print(f"| temperature / power (max) | {max(num(r, 4) for r in rows):.0f} °C / {max(num(r, 5) for r in rows):.0f} W | < 80 °C |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
