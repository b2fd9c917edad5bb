#!/usr/bin/env python3
"""attn8_flex_fwd.py — FlexAttention's sliding-window FORWARD only, at the SWA points of issue 3
(B = 1, HQ = 16, dh 64, W = 512 / 4096, L = 128K / 1M), for tuning runs of our forward that need
the anchor in the same run but not its backward (scripts/anchors_attention.py times fwd, bwd and
fwdbwd, which takes most of a short device call). Same block mask, timing (L2 flushed by a 256
MiB memset, one warm-up, median of repeats), FLOP count and CSV columns as anchors_attention.py,
so `anchors_attention.py ratio` joins its rows with ours.
  attn8_flex_fwd.py OUT.csv GIT_SHA
"""
import csv
import datetime
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from anchors_attention import HEADER, SWA, pairs, sliding_block_mask  # noqa: E402


def main(out, sha):
    import torch
    from torch.nn.attention.flex_attention import flex_attention

    dev = torch.cuda.get_device_name(0)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    new = not os.path.exists(out) or os.path.getsize(out) == 0
    f = open(out, "a", newline="")
    w = csv.writer(f)
    if new:
        w.writerow(HEADER)
    flex = torch.compile(flex_attention, dynamic=False)
    HQ, dh = 16, 64
    for W, L in SWA:
        def sliding(b, h, qi, ki):
            return (qi >= ki) & (qi - ki <= W)
        bm = sliding_block_mask(sliding, L, W)
        q, k, v = (torch.randn(1, HQ, L, dh, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        flops = 4.0 * HQ * dh * pairs(L, W)
        reps = 5 if flops / 200e12 * 1e3 > 30 else 15
        with torch.no_grad():
            flex(q, k, v, block_mask=bm)
            torch.cuda.synchronize()
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            ts = []
            for _ in range(reps):
                flush.zero_()
                e0.record()
                flex(q, k, v, block_mask=bm)
                e1.record()
                torch.cuda.synchronize()
                ts.append(e0.elapsed_time(e1))
        ms = statistics.median(ts)
        tf = flops / (ms * 1e-3) / 1e12
        gb = (2.0 * 4 * L * HQ * dh + 4.0 * HQ * L) / (ms * 1e-3) / 1e9
        w.writerow(["swa", "fwd", "cuda", 1, L, HQ, HQ, dh, W, f"{ms:.4f}", f"{min(ts):.4f}", f"{max(ts):.4f}", reps,
                    f"{tf:.5g}", f"{gb:.5g}", dev, sha, date, "ok", "flex", ""])
        f.flush()
        print(f"flex swa fwd L={L:<8d} W={W:<5d} {ms:10.3f} ms {tf:7.1f} TFLOP/s", flush=True)
        del q, k, v, bm
        torch.cuda.empty_cache()
    f.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
