# anchor_dense_train.py — PyTorch anchor for `longctx train --config dense` (train2, issue 8): the same
# model (byte vocab 256, d = 768, 12 causal layers of 12 heads x 64 with q/k RMSNorm, rotate-half RoPE,
# SwiGLU 2048, untied head) trained with bf16 autocast over fp32 weights, F.scaled_dot_product_attention
# (flash) and fused AdamW, eager (no torch.compile). Prints tokens/s and the MFU with longctx's FLOP count
# (model_train_flops, model.h: 7.373e8 FLOPs per token at T = 4096) against 800 TFLOP/s.
# usage: python3 scripts/anchor_dense_train.py [B] [T] [steps]
import sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

B = int(sys.argv[1]) if len(sys.argv) > 1 else 16
T = int(sys.argv[2]) if len(sys.argv) > 2 else 4096
STEPS = int(sys.argv[3]) if len(sys.argv) > 3 else 10
V, D, NL, H, DH, FF = 256, 768, 12, 12, 64, 2048
FLOPS_TOK = 7.373e8  # longctx model_train_flops for dense at T = 4096
dev = "cuda"
torch.manual_seed(0)

def rope_tables(T, dh, theta=10000.0):
    inv = theta ** (-torch.arange(0, dh // 2, dtype=torch.float64) * 2.0 / dh)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    return ang.cos().float().to(dev), ang.sin().float().to(dev)

def rope(x, cos, sin):  # x [B, H, T, dh]
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    c, s = cos[None, None], sin[None, None]
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.n1, self.n2 = nn.RMSNorm(D), nn.RMSNorm(D)
        self.qn, self.kn = nn.RMSNorm(DH), nn.RMSNorm(DH)
        self.qkv = nn.Linear(D, 3 * D, bias=False)
        self.o = nn.Linear(D, D, bias=False)
        self.gu = nn.Linear(D, 2 * FF, bias=False)
        self.down = nn.Linear(FF, D, bias=False)
    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        q, k, v = self.qkv(self.n1(x)).view(b, t, 3, H, DH).unbind(2)
        q = rope(self.qn(q).transpose(1, 2), cos, sin)
        k = rope(self.kn(k).transpose(1, 2), cos, sin)
        a = F.scaled_dot_product_attention(q, k, v.transpose(1, 2), is_causal=True)
        x = x + self.o(a.transpose(1, 2).reshape(b, t, D))
        g, u = self.gu(self.n2(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(g) * u)

class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(V, D)
        self.blocks = nn.ModuleList([Block() for _ in range(NL)])
        self.norm = nn.RMSNorm(D)
        self.head = nn.Linear(D, V, bias=False)
    def forward(self, ids, cos, sin):
        x = self.emb(ids)
        for blk in self.blocks:
            x = blk(x, cos, sin)
        return self.head(self.norm(x))

m = Model().to(dev)
nparam = sum(p.numel() for p in m.parameters())
opt = torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
cos, sin = rope_tables(T, DH)
data = torch.randint(0, V, (B, T + 1), device=dev)

def step():
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = m(data[:, :-1], cos, sin)
    loss = F.cross_entropy(logits.float().view(-1, V), data[:, 1:].reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss

for _ in range(3):
    step()
torch.cuda.synchronize()
t0 = time.time()
for _ in range(STEPS):
    loss = step()
torch.cuda.synchronize()
dt = (time.time() - t0) / STEPS
tps = B * T / dt
print(f"pytorch anchor dense: {nparam} params, B={B} T={T}: {dt * 1e3:.1f} ms/step, {tps:.0f} tok/s, "
      f"mfu {FLOPS_TOK * tps / 800e12:.3f}, loss {loss.item():.3f}, torch {torch.__version__}")
