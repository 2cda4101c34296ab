"""The train_step parity check of `npm run bench`: every training step compared from the same starting state.

Why per step: Adam's first update of a weight is lr * g / (|g| + eps), so a gradient that is zero up to float32
rounding (e.g. a conv bias right before a GroupNorm of one-channel groups) moves that weight by up to +-lr in a
direction decided by rounding. Two correct implementations (or PyTorch against itself at another thread count or
memory layout) therefore drift apart after a step, and the entropy loss at temperature 0.01 amplifies the drift:
comparing step 2 of two free runs compares rounding, not code. So step i starts on both sides from the state S_i
that the reference reached (S_0: the shared initial weights with fresh optimizers; S_i, i > 0: weights, buffers,
both Adam states, LitEma buffers and LeCAM EMA written by `prep`, which ours loads with TokenizerTrainer.restore),
and after the step the check compares, at the team's tolerances:
  - every logged loss of step i (outputs: 1e-5);
  - every parameter's gradient of both optimizers (1e-4), read from ours' Adam first moment after the step
    (g = (exp_avg' - beta1 * exp_avg) / (1 - beta1), exp_avg from S_i) against the reference's .grad, and ours'
    second moments and step counts against the reference's;
  - ours' updated weights against torch.optim.Adam's update rule applied to S_i's weights with ours' own moments
    (1e-5): the update itself is checked exactly, without the rounding-decided drift above;
  - ours' LitEma buffers against LitEma's rule applied to S_i's buffers and ours' updated weights (1e-5), and
    num_updates exactly;
  - the other buffers (BatchNorm running statistics: 1e-5, counters exactly), the LeCAM EMA values (1e-5), and a
    few named weights across the two sides (1e-4; weights whose gradient is far from zero).
A wrong gradient, moment, update, EMA or restored state fails one of these rows.
"""
import torch

BETAS, EPS = (0.5, 0.9), 1e-8


def save_state(path, m, step):
    """S_step of module m (worker.make_training_module) in the Lightning layout TokenizerTrainer.restore reads."""
    torch.save({
        "state_dict": {k: v.detach().contiguous() for k, v in m.state_dict().items()},
        "optimizer_states": [m.opt_gen.state_dict(), m.opt_disc.state_dict()],
        "lecam_ema": {"logits_real_ema": m.loss.ema_real, "logits_fake_ema": m.loss.ema_fake, "decay": m.loss.ema_decay},
        "epoch": 0, "global_step": step,
    }, path)


def load_state(m, path):
    ck = torch.load(path, map_location="cpu")
    m.load_state_dict(ck["state_dict"])
    m.opt_gen.load_state_dict(ck["optimizer_states"][0])
    m.opt_disc.load_state_dict(ck["optimizer_states"][1])
    m.loss.ema_real, m.loss.ema_fake = ck["lecam_ema"]["logits_real_ema"], ck["lecam_ema"]["logits_fake_ema"]


def prep(make, p, d, xs):
    """Runs the reference through steps 0 .. steps-2 from weights.ckpt, writing S_1 .. S_{steps-1} (state<i>.ckpt)."""
    m = make(p)
    m.load_state_dict(torch.load(d + "/weights.ckpt", map_location="cpu")["state_dict"])
    for i in range(p["steps"] - 1):
        m.step(xs["x%d" % i])
        save_state(d + "/state%d.ckpt" % (i + 1), m, i + 1)


def _opt_entries(m, opt):
    """(name, param, state) of each parameter of opt, in the optimizer's order."""
    names = {id(q): n for n, q in m.named_parameters()}
    return [(names[id(q)], q, opt.state.get(q, {})) for q in opt.param_groups[0]["params"]]


def _worst(pairs):
    """max |a - b| over (name, a, b) and the name where it occurs."""
    best, where = 0.0, None
    for name, a, b in pairs:
        if tuple(a.shape) != tuple(b.shape):
            return float("inf"), name + " (shape %s vs %s)" % (list(a.shape), list(b.shape))
        diff = float((a.double() - b.double()).abs().max()) if a.numel() else 0.0
        if where is None or diff > best:
            best, where = diff, name
    return best, where


def _row(c, name, pairs, tol):
    diff, where = _worst(pairs)
    good = diff <= tol
    c.rows.append({"name": name, "ok": good, "max_abs_diff": diff, "tol": tol, "worst": where, "count": len(pairs)})
    c.ok &= good


def check(make, p, d, xs, c):
    ologs = torch.load(d + "/ours.ckpt", map_location="cpu")["state_dict"]
    for i in range(p["steps"]):
        m = make(p)
        if i == 0:
            m.load_state_dict(torch.load(d + "/weights.ckpt", map_location="cpu")["state_dict"])
        else:
            load_state(m, d + "/state%d.ckpt" % i)
        opts = {"generator": (0, m.opt_gen), "discriminator": (1, m.opt_disc)}
        before = {n: q.detach().clone() for n, q in m.named_parameters()}
        moments = {k: {n: (s["exp_avg"].clone(), s["exp_avg_sq"].clone()) for n, _, s in _opt_entries(m, o) if s}
                   for k, (_, o) in opts.items()}
        ema_before = {s: b.clone() for s, b in m.model_ema.named_buffers()}
        log = m.step(xs["x%d" % i])
        ours = torch.load(d + "/ours_after%d.ckpt" % i, map_location="cpu")
        osd = ours["state_dict"]
        for k, v in log.items():
            c("step%d %s" % (i, k), ologs["step%d/%s" % (i, k)].double(), torch.tensor(v, dtype=torch.float64), 1e-5)
        for kind, (j, o) in opts.items():
            ost = ours["optimizer_states"][j]["state"]
            grads, sq, upd, steps_bad = [], [], [], 0
            for idx, (n, q, s) in enumerate(_opt_entries(m, o)):
                if idx not in ost:
                    c.ok = False
                    c.rows.append({"name": "step%d %s: no Adam state for %s" % (i, kind, n), "ok": False})
                    continue
                e = ost[idx]
                m0, v0 = moments[kind].get(n, (torch.zeros_like(q), torch.zeros_like(q)))
                grads.append((n, (e["exp_avg"] - BETAS[0] * m0) / (1 - BETAS[0]), q.grad))
                sq.append((n, e["exp_avg_sq"], s["exp_avg_sq"]))
                t = float(e["step"])
                steps_bad += int(t != float(s["step"]))
                lr = ours["optimizer_states"][j]["param_groups"][0]["lr"]
                denom = (e["exp_avg_sq"].sqrt() / ((1 - BETAS[1] ** t) ** 0.5)).add_(EPS)
                upd.append((n, osd[n], before[n].addcdiv(e["exp_avg"], denom, value=-lr / (1 - BETAS[0] ** t))))
            _row(c, "step%d %s gradients (from ours' exp_avg)" % (i, kind), grads, 1e-4)
            _row(c, "step%d %s exp_avg_sq" % (i, kind), sq, 1e-4)
            _row(c, "step%d %s weights: Adam's rule on ours' moments" % (i, kind), upd, 1e-5)
            c("step%d %s Adam step counts (mismatching)" % (i, kind), torch.tensor(steps_bad), torch.tensor(0), 0, exact=True)
        ema = m.model_ema
        c("step%d model_ema.num_updates" % i, osd["model_ema.num_updates"], ema.num_updates, 0, exact=True)
        nu = float(ema.num_updates)
        omd = 1.0 - min(float(ema.decay), (1 + nu) / (10 + nu))
        _row(c, "step%d model_ema: LitEma's rule on ours' weights" % i,
             [("model_ema." + s, osd["model_ema." + s], ema_before[s] - omd * (ema_before[s] - osd[n])) for n, s in ema.names], 1e-5)
        params = set(before)
        bufs = [(k, osd[k], v) for k, v in m.state_dict().items() if k not in params and not k.startswith(("model_ema.", "loss.perceptual_loss."))]
        _row(c, "step%d float buffers (BatchNorm statistics)" % i, [b for b in bufs if b[2].is_floating_point()], 1e-5)
        ints = [b for b in bufs if not b[2].is_floating_point()]
        c("step%d integer buffers (mismatching)" % i, torch.tensor(sum(int((a != b).any()) for _, a, b in ints)), torch.tensor(0), 0, exact=True)
        lec = ours["lecam_ema"]
        c("step%d LeCAM EMA (real, fake)" % i, torch.tensor([lec["logits_real_ema"], lec["logits_fake_ema"]], dtype=torch.float64),
          torch.tensor([m.loss.ema_real, m.loss.ema_fake], dtype=torch.float64), 1e-5)
        sd = m.state_dict()
        for k in p["compare_params"]:
            c("step%d after: %s" % (i, k), osd[k], sd[k], 1e-4)
