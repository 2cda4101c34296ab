"""`npm run bench -- --upstream DIR`: times the upstream IBQ project's own modules (a local checkout given by
the user; nothing of it is stored in this repository) on the same workloads and sizes.

    upstream.py time <workload> <params.json> <DIR>

Supported: encode_decode (diffusionmodules.model Encoder/Decoder + vqvae.quantize.IndexPropagationQuantize),
quantizer_* (IndexPropagationQuantize) and ar_sampling (transformer.llama GPT + sample_IBQ). The upstream
code needs einops, and its sampler torch >= 2.0 (`with torch.device`): point IBQ_BENCH_PYTHON at such a
Python. The training step (Lightning module) and checkpoint loading (torch.load, the PyTorch column) are
not run here.
"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker import images, peak_mb, quant_inputs, rss_mb, timed  # noqa: E402


def upstream_modules(root, *names):
    sys.path.insert(0, root)
    import importlib
    try:
        return [importlib.import_module("src.IBQ." + n) for n in names]
    except ImportError as e:
        raise SystemExit("upstream checkout %s: cannot import its modules (%s); it needs einops and, for "
                         "sampling, torch >= 2.0 (set IBQ_BENCH_PYTHON)" % (root, e))


def quantizer(mod, p):
    return mod.IndexPropagationQuantize(p["K"], p["D"], beta=0.25, use_entropy_loss=True, entropy_temperature=0.01)


def time_mode(w, p, root):
    torch.manual_seed(0)
    if w == "encode_decode":
        model, quantize = upstream_modules(root, "modules.diffusionmodules.model", "modules.vqvae.quantize")
        dd = p["ddconfig"]
        enc, dec = model.Encoder(**dd).eval(), model.Decoder(**dd).eval()
        q = quantizer(quantize, {"K": p["n_embed"], "D": p["embed_dim"]}).eval()
        qc = torch.nn.Conv2d(dd["z_channels"], p["embed_dim"], 1)
        pqc = torch.nn.Conv2d(p["embed_dim"], dd["z_channels"], 1)

        def run(x):
            with torch.no_grad():
                h = qc(enc(x))
                _, _, (_, _, ind) = q(h)
                b, _, hh, ww = h.shape
                z_q = q.get_codebook_entry(ind.view(-1), (b, hh, ww, p["embed_dim"]))
                return dec(pqc(z_q))
        x, xw = images(p, p["batch"], 1), images(p, p.get("warmup_batch", p["batch"]), 2)
        times, base = timed(lambda: run(x), p["warmup"], p["reps"], lambda: run(xw))
    elif w.startswith("quantizer"):
        (quantize,) = upstream_modules(root, "modules.vqvae.quantize")
        q = quantizer(quantize, p)
        z, g = quant_inputs(p)

        def run():
            zz = z.clone().requires_grad_(True)
            z_q, (ql, _, _, el), _ = q(zz)
            obj = (z_q * g).sum() + ql + 0.05 * el
            return torch.autograd.grad(obj, [zz, q.embedding.weight])
        times, base = timed(run, p["warmup"], p["reps"])
    elif w == "ar_sampling":
        (llama,) = upstream_modules(root, "modules.transformer.llama")
        m = llama.GPT(p["vocab_size"], p["block_size"], n_layer=p["n_layer"], n_head=p["n_head"], n_embd=p["n_embd"],
                      cond_dim=p["n_embd"], class_num=p["class_num"]).eval()
        labels = (torch.arange(p["batch"]) % p["class_num"])[:, None]
        x = torch.cat([labels, torch.full_like(labels, p["class_num"])]) if p["cfg_scale"] > 1 else labels

        def run(steps):
            torch.manual_seed(0)
            return llama.sample_IBQ(x, m, steps, temperature=1.0, top_k=0, top_p=1.0, cfg_scale=p["cfg_scale"])
        times, base = timed(lambda: run(p["block_size"]), p["warmup"], p["reps"])
    else:
        raise SystemExit("upstream: workload %s is not run from the upstream checkout" % w)
    return {"times": times, "peak_rss_mb": peak_mb(), "baseline_rss_mb": base}


def main():
    w, p, root = sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
    torch.set_num_threads(int(p.get("threads", 2)))
    res = time_mode(w, p, root)
    res["threads"] = torch.get_num_threads()
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
