"""PyTorch side of `npm run bench` (run with /usr/bin/python3: Debian's torch on the same libtorch as ours).

    worker.py prep  <workload> <params.json> <dir>   writes weights.ckpt + inputs.ckpt for the parity check
    worker.py check <workload> <params.json> <dir>   recomputes with the reference, compares with ours.ckpt
    worker.py time  <workload> <params.json> <dir>   times the workload, prints one JSON line
    worker.py mkckpt <path> <count> <mb>             writes a torch.save checkpoint of count x mb float32 tensors

Every mode prints one JSON line on stdout. LPIPS weights: random (seeded) and shared by both sides through
weights.ckpt; the official VGG16 / LPIPS weights are not available offline and do not change the cost.
"""
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokenizer_ref as T  # noqa: E402
import train_parity  # noqa: E402
import transformer_ref as G  # noqa: E402
import data_ref  # noqa: E402


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def save_sd(path, sd):
    torch.save({"state_dict": {k: v.detach().contiguous() for k, v in sd.items()}}, path)


def load_sd(path):
    ck = torch.load(path, map_location="cpu")
    return ck["state_dict"] if "state_dict" in ck else ck


def tok_cfg(p):
    return {"ddconfig": p["ddconfig"], "n_embed": p["n_embed"], "embed_dim": p["embed_dim"], "beta": 0.25,
            "entropy_temperature": 0.01}


def gpt_cfg(p):
    return {k: p[k] for k in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "class_num")}


def make_training_module(p):
    m = T.TrainingModule(tok_cfg(p), p["lossconfig"])
    with torch.no_grad():  # LPIPS lin layers are non-negative in the official weights
        for k in range(5):
            w = getattr(m.loss.perceptual_loss, "lin%d" % k).model[1].weight
            w.abs_().mul_(0.1)
    return m


def images(p, b, seed):
    g = torch.Generator().manual_seed(seed)
    r = p["resolution"]
    return torch.rand(b, 3, r, r, generator=g) * 2 - 1


def quant_inputs(p, seed=0):
    g = torch.Generator().manual_seed(seed)
    side = int(round((p["N"] // p["B"]) ** 0.5))
    z = torch.randn(p["B"], p["D"], side, side, generator=g)
    grad_out = torch.randn(p["B"], p["D"], side, side, generator=g)
    return z, grad_out


def quant_objective(q, z, grad_out, wq, we):
    o = q(z)
    return o, (o["z_q"] * grad_out).sum() + wq * o["quant_loss"] + we * o["entropy_loss"]


# ---- prep: weights and inputs for the parity check ----------------------------------------------------

def prep(w, p, d):
    torch.manual_seed(p.get("seed", 0))
    if w == "data":
        return data_ref.prep(p, d)
    if w == "train_step":
        m = make_training_module(p)
        save_sd(d + "/weights.ckpt", m.state_dict())
        xs = {"x%d" % i: images(p, p["batch"], 100 + i) for i in range(p["steps"])}
        save_sd(d + "/inputs.ckpt", xs)
        train_parity.prep(make_training_module, p, d, xs)  # the reference's state before each later step
    elif w == "encode_decode":
        t = T.Tokenizer(tok_cfg(p))
        save_sd(d + "/weights.ckpt", t.state_dict())
        save_sd(d + "/inputs.ckpt", {"x": images(p, p["batch"], 7)})
    elif w.startswith("quantizer"):
        q = T.IBQuantizer(p["K"], p["D"])
        save_sd(d + "/weights.ckpt", q.state_dict())
        z, g = quant_inputs(p)
        save_sd(d + "/inputs.ckpt", {"z": z, "grad_out": g})
    elif w == "ar_sampling":
        m = G.Transformer(gpt_cfg(p))
        with torch.no_grad():
            m.head.weight.normal_(0, 1.0)  # logits that matter for the draws
        save_sd(d + "/weights.ckpt", m.state_dict())
        g = torch.Generator().manual_seed(3)
        labels = torch.randint(0, p["class_num"], (p["batch"],), generator=g)
        tokens = torch.randint(0, p["vocab_size"], (p["batch"], p["block_size"] - 1), generator=g)
        save_sd(d + "/inputs.ckpt", {"labels": labels, "tokens": tokens})
    elif w == "ckpt_load":
        g = torch.Generator().manual_seed(5)
        sd = {"layer%d.weight" % i: torch.randn(64, 33, generator=g) for i in range(4)}
        sd["step"] = torch.arange(7, dtype=torch.int64)
        sd["half"] = torch.randn(5, 3, generator=g).half()
        save_sd(d + "/weights.ckpt", sd)
    else:
        raise SystemExit("unknown workload " + w)
    return {"ok": True}


# ---- check: the reference recomputes and compares with ours ---------------------------------------------

class Cmp:
    def __init__(self):
        self.rows, self.ok = [], True

    def __call__(self, name, ours, ref, tol, exact=False):
        ours, ref = torch.as_tensor(ours), torch.as_tensor(ref)
        if tuple(ours.shape) != tuple(ref.shape):
            self.ok = False
            self.rows.append({"name": name, "ok": False, "error": "shape %s vs %s" % (list(ours.shape), list(ref.shape))})
            return
        if exact:
            bad = int((ours != ref).sum())
            good = bad == 0
            self.rows.append({"name": name, "ok": good, "mismatches": bad, "exact": True})
        else:
            diff = float((ours.double() - ref.double()).abs().max()) if ours.numel() else 0.0
            good = diff <= tol
            self.rows.append({"name": name, "ok": good, "max_abs_diff": diff, "tol": tol})
        self.ok &= good


def check(w, p, d):
    ours = load_sd(d + "/ours.ckpt")
    c = Cmp()
    if w == "data":
        # ours resizes by PIL's own arithmetic: the same uint8 pixels as torchvision's (where the resized sizes agree:
        # ours rounds the longer side as albumentations, torchvision truncates; the same for the parity images), then
        # x / 127.5 - 1 against ToTensor + Normalize(0.5, 0.5): float32 rounding only (one uint8 step is 7.8e-3)
        for k, ref in data_ref.reference(p, d).items():
            c(k, ours[k], ref, 1e-6)
        return {"ok": c.ok, "rows": c.rows}
    if w == "train_step":
        # each step from the same state on both sides (the reference's): see train_parity.py for what is compared
        train_parity.check(make_training_module, p, d, load_sd(d + "/inputs.ckpt"), c)
    elif w == "encode_decode":
        t = T.Tokenizer(tok_cfg(p)).eval()
        t.load_state_dict(load_sd(d + "/weights.ckpt"))
        x = load_sd(d + "/inputs.ckpt")["x"]
        with torch.no_grad():
            idx, z_q = t.encode(x)
            xrec = t.decode(idx)
        c("indices", ours["indices"], idx, 0, exact=True)
        c("z_q", ours["z_q"], z_q, 1e-5)
        c("decode(indices)", ours["xrec"], xrec, 1e-5)
    elif w.startswith("quantizer"):
        q = T.IBQuantizer(p["K"], p["D"])
        q.load_state_dict(load_sd(d + "/weights.ckpt"))
        inp = load_sd(d + "/inputs.ckpt")
        z = inp["z"].clone().requires_grad_(True)
        o, obj = quant_objective(q, z, inp["grad_out"], 1.0, 0.05)
        gz, ge = torch.autograd.grad(obj, [z, q.embedding.weight])
        c("indices", ours["indices"], o["indices"], 0, exact=True)
        for k in ("z_q", "quant_loss", "sample_entropy", "avg_entropy", "entropy_loss"):
            c(k, ours[k], o[k].detach(), 1e-5)
        c("grad z", ours["grad/z"], gz, 1e-4)
        c("grad embedding.weight", ours["grad/embedding.weight"], ge, 1e-4)
    elif w == "ar_sampling":
        m = G.Transformer(gpt_cfg(p)).eval()
        m.load_state_dict(load_sd(d + "/weights.ckpt"))
        inp = load_sd(d + "/inputs.ckpt")
        with torch.no_grad():
            logits = m(inp["tokens"], inp["labels"])
        c("forward logits", ours["logits"], logits, 1e-5)
        c("greedy tokens (cfg %g)" % p["cfg_scale"], ours["greedy"],
          m.sample(inp["labels"], p["cfg_scale"], temperature=0), 0, exact=True)
        c("seeded tokens (cfg %g, seed 7)" % p["cfg_scale"], ours["sampled"],
          m.sample(inp["labels"], p["cfg_scale"], temperature=1.0, seed=7), 0, exact=True)
    elif w == "ckpt_load":
        ref = load_sd(d + "/weights.ckpt")
        for k, v in ref.items():
            c(k, ours[k], v, 0, exact=True)
            if ours[k].dtype != v.dtype:
                c.ok = False
                c.rows.append({"name": k + " dtype", "ok": False, "error": "%s vs %s" % (ours[k].dtype, v.dtype)})
    return {"ok": c.ok, "rows": c.rows}


# ---- time ---------------------------------------------------------------------------------------------

def timed(fn, warmup, reps, warm_fn=None):
    for _ in range(warmup):
        (warm_fn or fn)()
    base = rss_mb()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out, base


def time_mode(w, p, d):
    torch.manual_seed(0)
    extra = {}
    if w == "train_step":
        m = make_training_module(p)
        x = images(p, p["batch"], 1)
        times, base = timed(lambda: m.step(x), p["warmup"], p["reps"])
    elif w == "encode_decode":
        # What a PyTorch user does for inference on a CPU: inference_mode, and channels-last model and input, which
        # make its convolutions faster here (measured on the bench's EPYC: 15-20% less time for the whole call).
        t = T.Tokenizer(tok_cfg(p)).eval().to(memory_format=torch.channels_last)
        x = images(p, p["batch"], 1).contiguous(memory_format=torch.channels_last)
        xw = images(p, p.get("warmup_batch", p["batch"]), 2).contiguous(memory_format=torch.channels_last)

        def run(inp):
            with torch.inference_mode():
                return t.decode(t.encode(inp)[0])
        times, base = timed(lambda: run(x), p["warmup"], p["reps"], lambda: run(xw))
    elif w.startswith("quantizer"):
        q = T.IBQuantizer(p["K"], p["D"])
        z, g = quant_inputs(p)

        def run():
            zz = z.clone().requires_grad_(True)
            _, obj = quant_objective(q, zz, g, 1.0, 0.05)
            return torch.autograd.grad(obj, [zz, q.embedding.weight])
        times, base = timed(run, p["warmup"], p["reps"])
    elif w == "ar_sampling":
        m = G.Transformer(gpt_cfg(p)).eval()
        labels = torch.arange(p["batch"]) % p["class_num"]
        times, base = timed(lambda: m.sample(labels, p["cfg_scale"], 1.0, seed=0), p["warmup"], p["reps"])
        if p.get("small_batch"):  # the same sampling at the small batch size (its own timings)
            small = torch.arange(p["small_batch"]) % p["class_num"]
            extra["small_times"], _ = timed(lambda: m.sample(small, p["cfg_scale"], 1.0, seed=0), p["warmup"], p["reps"])
    elif w == "data":
        times, base = data_ref.time_data(p, d, rss_mb)
        extra["images"] = p["images"]
    elif w == "ckpt_load":
        if p.get("warm_path"):
            load_sd(p["warm_path"])  # warm-up: code paths
        base = rss_mb()
        t0 = time.perf_counter()
        sd = load_sd(p["path"])
        times = [time.perf_counter() - t0]
        extra["rss_after_load_mb"] = rss_mb() - base
        extra["tensors"] = len(sd)
    else:
        raise SystemExit("unknown workload " + w)
    return {"times": times, "peak_rss_mb": peak_mb(), "baseline_rss_mb": base, **extra}


def mkckpt(path, count, mb):
    n = int(mb * 2 ** 20 // 4)
    g = torch.Generator().manual_seed(11)
    side = int(n ** 0.5)
    sd = {"layers.%d.weight" % i: torch.randn(side, n // side, generator=g) for i in range(count)}
    tmp = path + ".tmp"
    torch.save({"state_dict": sd, "epoch": 1, "global_step": 10}, tmp)
    os.replace(tmp, path)
    return {"ok": True, "bytes": os.path.getsize(path)}


def main():
    mode = sys.argv[1]
    if mode == "mkckpt":
        res = mkckpt(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    else:
        w, p, d = sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
        threads = int(p.get("threads", 2))
        torch.set_num_threads(threads)
        res = {"prep": prep, "check": check, "time": time_mode}[mode](w, p, d)
        res["threads"] = torch.get_num_threads()
        res["torch"] = torch.__version__
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
