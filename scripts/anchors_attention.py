#!/usr/bin/env python3
"""anchors_attention.py — anchor timings for dense causal and sliding-window attention, measured
with PyTorch on the same card in the same run as ours, and the ratio file.

  anchors_attention.py measure OUT.csv GIT_SHA     time the anchors below, append rows to OUT.csv
                         (env ANCHOR_SET=all|dense|swa, ANCHOR_DENSE_DH=64,128,
                          ANCHOR_DIRS=fwd,bwd,fwdbwd: subsets)
  anchors_attention.py ratio OURS.csv ANCHORS.csv RATIO.csv
                                                   join on (kernel, direction, B, L, HQ, H, dh, W)

Anchors: SDPA FLASH backend (FlashAttention-2) and SDPA cuDNN backend for dense causal
(is_causal=True), FlexAttention (torch.compile'd flex_attention) with a sliding-window block mask
(keys t-W..t, the same window as ours) for swa. bf16, B = 1, layout [B, H, L, dh].
Timing: CUDA events around each repeat after a 256 MiB memset that flushes the L2, warm-up first,
median of repeats. FLOPs as in bench/bench_attention.c: forward 4*B*HQ*dh*pairs, backward 2.5x,
fwdbwd 3.5x. Columns match scripts/attention_bench.c; `anchor` names the anchor.
ratio: speedup = anchor_ms / ours_ms (> 1: ours is faster).
"""
import csv
import datetime
import os
import statistics
import sys

HEADER = ["kernel", "direction", "backend", "B", "L", "HQ", "H", "dh", "W", "ms", "ms_min", "ms_max", "reps",
          "tflops", "gbps", "device", "git_sha", "date", "status", "anchor", "note"]

DENSE = [(dh, L) for dh in (64, 128) for L in (16384, 65536, 131072)]
SWA = [(W, L) for W in (512, 4096) for L in (131072, 1048576)]


def pairs(L, W):
    if W == 0 or W >= L - 1:
        return L * (L + 1) / 2
    return (W + 1) * (W + 2) / 2 + (L - W - 1) * (W + 1)


def sliding_block_mask(mask_mod, L, W, bs=128):
    """Block mask for keys t-W..t without materialising L x L: create_block_mask(_compile=True)
    evaluates the mask per block; if this torch lacks that, build the block lists directly
    (full blocks skip mask_mod, partial blocks apply it)."""
    import torch
    from torch.nn.attention.flex_attention import BlockMask, create_block_mask
    try:
        return create_block_mask(mask_mod, None, None, L, L, device="cuda", BLOCK_SIZE=bs, _compile=True)
    except TypeError:
        pass
    nb = (L + bs - 1) // bs
    i = torch.arange(nb, device="cuda")
    lo = torch.clamp((i * bs - W) // bs, min=0)  # first block holding a visible key
    full_lo = torch.clamp((i * bs + bs - 1 - W + bs - 1) // bs, min=0)  # first fully visible block
    full_hi = i - 1  # last fully visible block (the diagonal block is partial)
    nfull = torch.clamp(full_hi - full_lo + 1, min=0)
    maxc = int((i - lo + 1).max())
    j = torch.arange(maxc, device="cuda")
    cand = lo[:, None] + j[None, :]
    is_part = (cand < full_lo[:, None]) | (cand == i[:, None]) | ((nfull == 0)[:, None] & (cand <= i[:, None]))
    is_part &= cand <= i[:, None]
    nparts = is_part.sum(1)
    order = torch.argsort((~is_part).to(torch.int8), dim=1, stable=True)
    kv_idx = torch.gather(cand, 1, order).to(torch.int32)
    full_idx = (full_lo[:, None] + j[None, :]).clamp(max=nb - 1).to(torch.int32)
    return BlockMask.from_kv_blocks(nparts.to(torch.int32)[None, None], kv_idx[None, None],
                                    nfull.to(torch.int32)[None, None], full_idx[None, None],
                                    BLOCK_SIZE=bs, mask_mod=mask_mod)


def measure(out, sha):
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    dev = torch.cuda.get_device_name(0)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    new = not os.path.exists(out) or os.path.getsize(out) == 0
    f = open(out, "a", newline="")
    w = csv.writer(f)
    if new:
        w.writerow(HEADER)
    print(f"torch {torch.__version__} on {dev}", flush=True)

    def timeit(fn, est_ms):
        reps = 3 if est_ms > 300 else 5 if est_ms > 30 else 15
        fn()
        torch.cuda.synchronize()
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        ts = []
        for _ in range(reps):
            flush.zero_()
            e0.record()
            fn()
            e1.record()
            torch.cuda.synchronize()
            ts.append(e0.elapsed_time(e1))
        return statistics.median(ts), min(ts), max(ts), reps

    dirs = os.environ.get("ANCHOR_DIRS", "fwd,bwd,fwdbwd").split(",")  # e.g. fwd only (tuning runs)

    def row(kernel, direction, L, HQ, dh, W, anchor, fn, note=""):
        if direction not in dirs:
            return
        B = 1
        f1 = 4.0 * B * HQ * dh * pairs(L, W)
        mult = {"fwd": 1.0, "bwd": 2.5, "fwdbwd": 3.5}[direction]
        flops = f1 * mult
        e = 2.0
        nq = B * L * HQ * dh
        nl = 4.0 * B * HQ * L
        byts = {"fwd": e * 4 * nq + nl, "bwd": e * 8 * nq + nl, "fwdbwd": e * 8 * nq + nl}[direction]
        try:
            ms, mn, mx, reps = timeit(fn, flops / 200e12 * 1e3)
            status = "ok"
        except Exception as ex:  # an anchor that cannot run is a row, not a crash
            ms = mn = mx = 0.0
            reps = 0
            status = "error"
            note = (note + " " + str(ex).splitlines()[0] if str(ex) else type(ex).__name__).replace(",", ";")[:200]
            torch.cuda.empty_cache()
        tf = flops / (ms * 1e-3) / 1e12 if ms > 0 else 0
        gb = byts / (ms * 1e-3) / 1e9 if ms > 0 else 0
        w.writerow([kernel, direction, "cuda", B, L, HQ, HQ, dh, W, f"{ms:.4f}", f"{mn:.4f}", f"{mx:.4f}", reps,
                    f"{tf:.5g}", f"{gb:.5g}", dev, sha, date, status, anchor, note])
        f.flush()
        print(f"{anchor:11s} {kernel:5s} {direction:6s} L={L:<8d} dh={dh:<3d} W={W:<5d} {ms:10.3f} ms "
              f"{tf:7.1f} TFLOP/s {status} {note}", flush=True)

    HQ = 16
    which = os.environ.get("ANCHOR_SET", "all")  # all | dense | swa (tuning runs)
    dense_dh = [int(x) for x in os.environ.get("ANCHOR_DENSE_DH", "64,128").split(",")]  # e.g. 64 only
    for dh, L in (DENSE if which in ("all", "dense") else []):
        if dh not in dense_dh:
            continue
        q, k, v, g = (torch.randn(1, HQ, L, dh, device="cuda", dtype=torch.bfloat16) for _ in range(4))
        for t in (q, k, v):
            t.requires_grad_(True)
        for name, be in (("sdpa_flash", SDPBackend.FLASH_ATTENTION), ("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION)):
            def fwd():
                with sdpa_kernel(be):
                    return F.scaled_dot_product_attention(q, k, v, is_causal=True)
            with torch.no_grad():
                row("dense", "fwd", L, HQ, dh, 0, name, fwd)
            try:
                o = fwd()
                row("dense", "bwd", L, HQ, dh, 0, name,
                    lambda: torch.autograd.grad(o, (q, k, v), g, retain_graph=True))
                del o
            except Exception as ex:
                print(f"{name} bwd failed: {ex}", flush=True)
            row("dense", "fwdbwd", L, HQ, dh, 0, name, lambda: torch.autograd.grad(fwd(), (q, k, v), g))
        del q, k, v, g
        torch.cuda.empty_cache()

    try:  # timing the backward alone needs retain_graph, which donated buffers forbid
        import torch._functorch.config as fc
        fc.donated_buffer = False
    except Exception:
        pass
    flex = torch.compile(flex_attention, dynamic=False)
    dh = 64
    for W, L in (SWA if which in ("all", "swa") else []):
        def sliding(b, h, qi, ki):
            return (qi >= ki) & (qi - ki <= W)
        try:
            bm = sliding_block_mask(sliding, L, W)
        except Exception as ex:
            print(f"block mask W={W} L={L} failed: {ex}", flush=True)
            continue
        q, k, v, g = (torch.randn(1, HQ, L, dh, device="cuda", dtype=torch.bfloat16) for _ in range(4))
        for t in (q, k, v):
            t.requires_grad_(True)
        with torch.no_grad():
            row("swa", "fwd", L, HQ, dh, W, "flex", lambda: flex(q, k, v, block_mask=bm))
        try:
            o = flex(q, k, v, block_mask=bm) if "bwd" in dirs else None
            row("swa", "bwd", L, HQ, dh, W, "flex", lambda: torch.autograd.grad(o, (q, k, v), g, retain_graph=True))
            del o
        except Exception as ex:
            print(f"flex bwd failed: {ex}", flush=True)
        row("swa", "fwdbwd", L, HQ, dh, W, "flex",
            lambda: torch.autograd.grad(flex(q, k, v, block_mask=bm), (q, k, v), g))
        del q, k, v, g, bm
        torch.cuda.empty_cache()
    f.close()


def ratio(ours_csv, anchors_csv, out_csv):
    key = lambda r: (r["kernel"], r["direction"], r["B"], r["L"], r["HQ"], r["H"], r["dh"], r["W"])
    ours = {}
    for r in csv.DictReader(open(ours_csv)):
        if r["status"] == "ok" and r["backend"] == "cuda" and not r["anchor"]:
            ours[key(r)] = r
    with open(out_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["kernel", "direction", "B", "L", "HQ", "H", "dh", "W", "anchor", "ours_ms", "anchor_ms",
                    "ours_tflops", "anchor_tflops", "speedup", "device", "git_sha", "date"])
        for r in csv.DictReader(open(anchors_csv)):
            o = ours.get(key(r))
            if not o or r["status"] != "ok" or float(r["ms"]) <= 0:
                continue
            sp = float(r["ms"]) / float(o["ms"])
            w.writerow([*key(r), r["anchor"], o["ms"], r["ms"], o["tflops"], r["tflops"], f"{sp:.3f}", o["device"],
                        o["git_sha"], o["date"]])
            print(f"{r['kernel']:5s} {r['direction']:6s} L={r['L']:>8s} dh={r['dh']:>3s} W={r['W']:>5s} "
                  f"vs {r['anchor']:10s}: ours {float(o['ms']):9.3f} ms, anchor {float(r['ms']):9.3f} ms, x{sp:.2f}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "measure":
        measure(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 5 and sys.argv[1] == "ratio":
        ratio(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)
