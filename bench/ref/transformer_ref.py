"""PyTorch reference of the class-conditional Llama-AdaLN transformer (IBQ stage II, LlamaGen-style GPT) and
its KV-cache sampling loop with classifier-free guidance, as ibq-native computes them; written for the
benchmark, parameter names as in the official checkpoints (tok_emb, class_emb.embedding_table,
blocks.N.attention.wqkv, ..., head_nm.ada_lin.1, head). Float32 on the CPU."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def find_multiple(n, k):
    return n if n % k == 0 else n + k - n % k


def freqs_cis_2d(grid, head_dim, base, cls_token_num):
    half = head_dim // 2
    exps = torch.arange(0, half, 2)[: half // 2].float() / half
    freqs = torch.reciprocal(torch.pow(base, exps))
    freqs = torch.outer(torch.arange(grid), freqs)
    g = torch.cat([freqs[:, None, :].expand(-1, grid, -1), freqs[None, :, :].expand(grid, -1, -1)], -1)
    cache = torch.stack([torch.cos(g), torch.sin(g)], -1).flatten(0, 1)
    return torch.cat([torch.zeros(cls_token_num, half, 2), cache])


def rotary(x, freqs):
    xs = x.contiguous().float().view(x.shape[0], x.shape[1], x.shape[2], -1, 2)
    f = freqs.view(1, xs.shape[1], 1, xs.shape[3], 2)
    x0, x1, c, s = xs[..., 0], xs[..., 1], f[..., 0], f[..., 1]
    return torch.stack([x0 * c - x1 * s, x1 * c + x0 * s], -1).flatten(3)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(torch.mean(xf * xf, -1, keepdim=True) + self.eps)).type_as(x) * self.weight


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, self.H = cfg["n_embd"], cfg["n_head"]
        self.C, self.hd = C, C // self.H
        hidden = find_multiple(int(2 * 4 * C / 3), cfg.get("multiple_of", 256))
        self.attention = nn.Module()
        self.attention.wqkv = nn.Linear(C, 3 * C, bias=False)
        self.attention.wo = nn.Linear(C, C, bias=False)
        self.feed_forward = nn.Module()
        self.feed_forward.w1 = nn.Linear(C, hidden, bias=False)
        self.feed_forward.w3 = nn.Linear(C, hidden, bias=False)
        self.feed_forward.w2 = nn.Linear(hidden, C, bias=False)
        eps = cfg.get("norm_eps", 1e-5)
        self.attention_norm, self.ffn_norm = RMSNorm(C, eps), RMSNorm(C, eps)
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(C, 6 * C))

    def attn(self, x, freqs, cache, pos):
        B, L, _ = x.shape
        H, hd = self.H, self.hd
        q, k, v = self.attention.wqkv(x).split([H * hd, H * hd, H * hd], -1)
        q = rotary(q.view(B, L, H, hd), freqs).transpose(1, 2)
        k = rotary(k.view(B, L, H, hd), freqs).transpose(1, 2)
        v = v.view(B, L, H, hd).transpose(1, 2)
        mask = None
        if cache is not None:
            cache[0][:B, :, pos:pos + L] = k
            cache[1][:B, :, pos:pos + L] = v
            k, v = cache[0][:B, :, :pos + L], cache[1][:B, :, :pos + L]
            if L > 1:
                mask = torch.arange(pos + L)[None, :] <= (torch.arange(L)[:, None] + pos)
        else:
            mask = torch.ones(L, L, dtype=torch.bool).tril()
        scores = torch.matmul(q, k.transpose(-2, -1)).mul_(1.0 / math.sqrt(hd))
        if mask is not None:
            scores.masked_fill_(mask.logical_not(), float("-inf"))
        out = torch.matmul(torch.softmax(scores, -1), v)
        return self.attention.wo(out.transpose(1, 2).contiguous().view(B, L, self.C))

    def forward(self, x, cond, freqs, cache=None, pos=0):
        m = self.ada_lin(cond).view(-1, 1, 6, self.C).unbind(2)
        a = self.attn(self.attention_norm(x).mul(m[2] + 1).add_(m[4]), freqs, cache, pos).mul_(m[0])
        h = x + a
        hn = self.ffn_norm(h).mul(m[3] + 1).add_(m[5])
        ff = self.feed_forward
        return h + ff.w2(F.silu(ff.w1(hn)) * ff.w3(hn)).mul(m[1])


class Transformer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        C, V = cfg["n_embd"], cfg["vocab_size"]
        self.tok_emb = nn.Embedding(V, C)
        self.class_emb = nn.Module()
        self.class_emb.embedding_table = nn.Embedding(cfg["class_num"] + 1, C)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg["n_layer"])])
        self.head_nm = nn.Module()
        self.head_nm.rmsnorm = RMSNorm(C, 1e-5)
        self.head_nm.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(C, 2 * C))
        self.head = nn.Linear(C, V, bias=False)
        grid = int(math.isqrt(cfg["block_size"]))
        self.freqs = freqs_cis_2d(grid, C // cfg["n_head"], cfg.get("rope_base", 10000), 1)
        with torch.no_grad():
            for p in self.parameters():
                p.normal_(0, 0.02)

    def run(self, h, cls, caches, pos):
        L = h.shape[1]
        freqs = self.freqs[pos:pos + L]
        for i, b in enumerate(self.blocks):
            h = b(h, cls, freqs, caches[i] if caches is not None else None, pos)
        ss = self.head_nm.ada_lin(cls).view(-1, 1, 2, self.cfg["n_embd"]).unbind(2)
        return self.head(self.head_nm.rmsnorm(h).mul(ss[0] + 1).add_(ss[1]))

    def forward(self, tokens, labels):
        cls = self.class_emb.embedding_table(labels.reshape(-1)).unsqueeze(1)
        return self.run(torch.cat([cls, self.tok_emb(tokens)], 1), cls, None, 0)

    @torch.no_grad()
    def sample(self, labels, cfg_scale=1.0, temperature=1.0, seed=None, greedy=False, steps=None):
        cfg = self.cfg
        steps = steps or cfg["block_size"]
        B = labels.shape[0]
        guide = cfg_scale > 1.0
        allc = torch.cat([labels, torch.full_like(labels, cfg["class_num"])]) if guide else labels
        N, H = allc.shape[0], cfg["n_head"]
        hd = cfg["n_embd"] // H
        caches = [(torch.zeros(N, H, 1 + steps, hd), torch.zeros(N, H, 1 + steps, hd)) for _ in range(cfg["n_layer"])]
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        cls = self.class_emb.embedding_table(allc).unsqueeze(1)
        out = torch.empty(B, steps, dtype=torch.long)
        nxt = None
        for n in range(steps):
            if n == 0:
                h, pos = cls, 0
            else:
                h, pos = self.tok_emb(torch.cat([nxt, nxt]) if guide else nxt), n
            logits = self.run(h, cls, caches, pos)[:, -1]
            if guide:
                c, u = logits.split(B, 0)
                logits = u + (c - u) * cfg_scale
            if temperature == 0:
                nxt = logits.argmax(-1, keepdim=True)
            else:
                probs = torch.softmax(logits / temperature, -1)
                nxt = torch.topk(probs, 1, -1)[1] if greedy else torch.multinomial(probs, 1, False, generator=gen)
            out[:, n] = nxt[:, 0]
        return out
