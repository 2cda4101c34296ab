"""PyTorch reference of the IBQ tokenizer as ibq-native computes it, for the benchmark (written for this
benchmark; module and parameter names follow the official IBQ / taming-transformers modules so state dicts
saved by either side load into the other). Float32 on the CPU.

Modules: VQGAN Encoder / Decoder, IBQ quantizer (Index Backpropagation Quantization, arXiv 2412.02692 Sec. 3),
LPIPS (VGG16 layout), PatchGAN discriminator, VQLPIPSWithDiscriminator losses (L1 + LPIPS, non-saturating
generator loss, hinge + LeCAM discriminator loss), LitEma, and one D+G training step with Adam (0.5, 0.9).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def norm(c):
    return nn.GroupNorm(32, c, eps=1e-6, affine=True)


def swish(x):
    return x * torch.sigmoid(x)


class ResnetBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm1 = norm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2 = norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1, 1, 0) if cin != cout else None

    def forward(self, x):
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(swish(self.norm2(h)))
        return (self.nin_shortcut(x) if self.nin_shortcut is not None else x) + h


class AttnBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm = norm(c)
        self.q = nn.Conv2d(c, c, 1)
        self.k = nn.Conv2d(c, c, 1)
        self.v = nn.Conv2d(c, c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        h = self.norm(x)
        q, k, v = self.q(h), self.k(h), self.v(h)
        b, c, hh, ww = q.shape
        w = torch.bmm(q.reshape(b, c, hh * ww).permute(0, 2, 1), k.reshape(b, c, hh * ww)) * (float(c) ** -0.5)
        w = torch.softmax(w, 2)
        out = torch.bmm(v.reshape(b, c, hh * ww), w.permute(0, 2, 1)).reshape(b, c, hh, ww)
        return x + self.proj_out(out)


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Downsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 2, 0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0))


class Mid(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.block_1 = ResnetBlock(c, c)
        self.attn_1 = AttnBlock(c)
        self.block_2 = ResnetBlock(c, c)

    def forward(self, x):
        return self.block_2(self.attn_1(self.block_1(x)))


def run_level(lvl, h):
    for j, blk in enumerate(lvl.block):
        h = blk(h)
        if len(lvl.attn) > 0:
            h = lvl.attn[j](h)
    return h


class Encoder(nn.Module):
    def __init__(self, dd):
        super().__init__()
        ch, mult = dd["ch"], dd["ch_mult"]
        self.conv_in = nn.Conv2d(dd["in_channels"], ch, 3, 1, 1)
        self.down = nn.ModuleList()
        res, block_in = dd["resolution"], ch
        for i in range(len(mult)):
            lvl = nn.Module()
            lvl.block, lvl.attn = nn.ModuleList(), nn.ModuleList()
            block_in = ch * (1 if i == 0 else mult[i - 1])
            block_out = ch * mult[i]
            for _ in range(dd["num_res_blocks"]):
                lvl.block.append(ResnetBlock(block_in, block_out))
                block_in = block_out
                if res in dd["attn_resolutions"]:
                    lvl.attn.append(AttnBlock(block_in))
            if i != len(mult) - 1:
                lvl.downsample = Downsample(block_in)
                res //= 2
            self.down.append(lvl)
        self.mid = Mid(block_in)
        self.norm_out = norm(block_in)
        self.conv_out = nn.Conv2d(block_in, dd["z_channels"], 3, 1, 1)

    def forward(self, x):
        h = self.conv_in(x)
        for lvl in self.down:
            h = run_level(lvl, h)
            if hasattr(lvl, "downsample"):
                h = lvl.downsample(h)
        return self.conv_out(swish(self.norm_out(self.mid(h))))


class Decoder(nn.Module):
    def __init__(self, dd):
        super().__init__()
        ch, mult = dd["ch"], dd["ch_mult"]
        block_in = ch * mult[-1]
        res = dd["resolution"] // 2 ** (len(mult) - 1)
        self.conv_in = nn.Conv2d(dd["z_channels"], block_in, 3, 1, 1)
        self.mid = Mid(block_in)
        ups = []
        for i in reversed(range(len(mult))):
            lvl = nn.Module()
            lvl.block, lvl.attn = nn.ModuleList(), nn.ModuleList()
            block_out = ch * mult[i]
            for _ in range(dd["num_res_blocks"] + 1):
                lvl.block.append(ResnetBlock(block_in, block_out))
                block_in = block_out
                if res in dd["attn_resolutions"]:
                    lvl.attn.append(AttnBlock(block_in))
            if i != 0:
                lvl.upsample = Upsample(block_in)
                res *= 2
            ups.insert(0, lvl)
        self.up = nn.ModuleList(ups)
        self.norm_out = norm(block_in)
        self.conv_out = nn.Conv2d(block_in, dd["out_ch"], 3, 1, 1)

    def forward(self, z):
        h = self.mid(self.conv_in(z))
        for i in reversed(range(len(self.up))):
            h = run_level(self.up[i], h)
            if hasattr(self.up[i], "upsample"):
                h = self.up[i].upsample(h)
        return self.conv_out(swish(self.norm_out(h)))


def entropy_terms(logits, temperature, smw, bmw):
    scaled = logits.float() / temperature
    probs = torch.softmax(scaled, -1)
    log_probs = torch.log_softmax(scaled + 1e-5, -1)
    avg_probs = probs.mean(0)
    avg_entropy = -(avg_probs * torch.log(avg_probs + 1e-5)).sum()
    sample_entropy = (-(probs * log_probs).sum(-1)).mean()
    return sample_entropy, avg_entropy, smw * sample_entropy - bmw * avg_entropy


class IBQuantizer(nn.Module):
    def __init__(self, n_embed, embed_dim, beta=0.25, entropy_temperature=0.01, smw=1.0, bmw=1.0):
        super().__init__()
        self.n_embed, self.beta, self.t, self.smw, self.bmw = n_embed, beta, entropy_temperature, smw, bmw
        self.embedding = nn.Embedding(n_embed, embed_dim)

    def forward(self, z):
        E = self.embedding.weight
        logits = torch.einsum("bdhw,nd->bnhw", z, E)
        soft = torch.softmax(logits, 1)
        ind = soft.max(1, keepdim=True)[1]
        hard = torch.zeros_like(logits, memory_format=torch.contiguous_format).scatter_(1, ind, 1.0)
        one_hot = hard - soft.detach() + soft
        z_q = torch.einsum("bnhw,nd->bdhw", one_hot, E)
        z_q2 = torch.einsum("bnhw,nd->bdhw", hard, E)
        quant_loss = (torch.mean((z_q - z) ** 2) + torch.mean((z_q2.detach() - z) ** 2)
                      + self.beta * torch.mean((z_q2 - z.detach()) ** 2))
        flat = logits.permute(0, 2, 3, 1).reshape(-1, self.n_embed)
        se, ae, el = entropy_terms(flat, self.t, self.smw, self.bmw)
        return dict(z_q=z_q, quant_loss=quant_loss, sample_entropy=se, avg_entropy=ae, entropy_loss=el,
                    indices=ind.squeeze(1))

    def encode_indices(self, z):
        b, d, h, w = z.shape
        logits = torch.mm(z.permute(0, 2, 3, 1).reshape(-1, d), self.embedding.weight.t())
        return logits.argmax(1).view(b, h, w)

    def get_codebook_entry(self, indices):
        return self.embedding(indices).permute(0, 3, 1, 2).contiguous()


class Tokenizer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        dd = cfg["ddconfig"]
        self.encoder = Encoder(dd)
        self.decoder = Decoder(dd)
        self.quantize = IBQuantizer(cfg["n_embed"], cfg["embed_dim"], cfg.get("beta", 0.25),
                                    cfg.get("entropy_temperature", 0.01))
        self.quant_conv = nn.Conv2d(dd["z_channels"], cfg["embed_dim"], 1)
        self.post_quant_conv = nn.Conv2d(cfg["embed_dim"], dd["z_channels"], 1)

    def forward(self, x):
        q = self.quantize(self.quant_conv(self.encoder(x)))
        q["xrec"] = self.decoder(self.post_quant_conv(q["z_q"]))
        return q

    def encode(self, x):
        idx = self.quantize.encode_indices(self.quant_conv(self.encoder(x)))
        return idx, self.quantize.get_codebook_entry(idx)

    def decode(self, idx):
        return self.decoder(self.post_quant_conv(self.quantize.get_codebook_entry(idx)))


# ---- losses -------------------------------------------------------------------------------------------

VGG_STAGES = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]
VGG_BOUNDS = [0, 4, 9, 16, 23, 30]


class LPIPS(nn.Module):
    """LPIPS with the VGG16 backbone (slices at features 4, 9, 16, 23, 30) and five 1x1 lin layers."""

    def __init__(self):
        super().__init__()
        self.scaling_layer = nn.Module()
        self.scaling_layer.register_buffer("shift", torch.tensor([-.030, -.088, -.188])[None, :, None, None])
        self.scaling_layer.register_buffer("scale", torch.tensor([.458, .448, .450])[None, :, None, None])
        layers, cin = [], 3
        for s, stage in enumerate(VGG_STAGES):
            if s > 0:
                layers.append(nn.MaxPool2d(2, 2))
            for c in stage:
                layers += [nn.Conv2d(cin, c, 3, 1, 1), nn.ReLU()]
                cin = c
        self.net = nn.Module()
        for s in range(5):
            sl = nn.Sequential()
            for i in range(VGG_BOUNDS[s], VGG_BOUNDS[s + 1]):
                sl.add_module(str(i), layers[i])
            setattr(self.net, "slice%d" % (s + 1), sl)
        for k, c in enumerate([64, 128, 256, 512, 512]):
            lin = nn.Module()
            lin.model = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(c, 1, 1, bias=False))
            setattr(self, "lin%d" % k, lin)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def feats(self, x):
        h = (x - self.scaling_layer.shift) / self.scaling_layer.scale
        out = []
        for s in range(5):
            h = getattr(self.net, "slice%d" % (s + 1))(h)
            out.append(h)
        return out

    def forward(self, a, b):
        f0, f1 = self.feats(a), self.feats(b)
        val = None
        for k in range(5):
            n0 = f0[k] / (torch.sqrt(torch.sum(f0[k] * f0[k], 1, keepdim=True)) + 1e-10)
            n1 = f1[k] / (torch.sqrt(torch.sum(f1[k] * f1[k], 1, keepdim=True)) + 1e-10)
            d = n0 - n1
            r = getattr(self, "lin%d" % k).model(d * d).mean([2, 3], keepdim=True)
            val = r if val is None else val + r
        return val


class NLayerDiscriminator(nn.Module):
    def __init__(self, input_nc=3, ndf=64, n_layers=3):
        super().__init__()
        seq = [nn.Conv2d(input_nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2 ** n, 8)
            seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * mult), nn.LeakyReLU(0.2)]
        prev, mult = mult, min(2 ** n_layers, 8)
        seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, 1, 1, bias=False), nn.BatchNorm2d(ndf * mult), nn.LeakyReLU(0.2),
                nn.Conv2d(ndf * mult, 1, 4, 1, 1)]
        self.main = nn.Sequential(*seq)
        with torch.no_grad():
            for m in self.main:
                if isinstance(m, nn.Conv2d):
                    m.weight.normal_(0.0, 0.02)
                elif isinstance(m, nn.BatchNorm2d):
                    m.weight.normal_(1.0, 0.02)
                    m.bias.zero_()

    def forward(self, x):
        return self.main(x)


def sigmoid_ce(labels, logits):
    zeros = torch.zeros_like(logits)
    cond = logits >= zeros
    return torch.where(cond, logits, zeros) - logits * labels + torch.log1p(torch.exp(torch.where(cond, -logits, logits)))


class VQLoss(nn.Module):
    """VQLPIPSWithDiscriminator with a fixed gen_loss_weight, hinge loss and LeCAM (the IBQ configs)."""

    def __init__(self, lc):
        super().__init__()
        self.lc = lc
        self.perceptual_loss = LPIPS()
        self.discriminator = NLayerDiscriminator(lc.get("disc_in_channels", 3), lc.get("disc_ndf", 64),
                                                 lc.get("disc_num_layers", 3))
        self.ema_real, self.ema_fake, self.ema_decay = 0.0, 0.0, 0.999

    def train(self, mode=True):
        super().train(mode)
        self.perceptual_loss.eval()
        return self

    def generator_loss(self, q, x, xrec):
        lc = self.lc
        rec_loss = torch.abs(x - xrec)
        p_loss = self.perceptual_loss(x, xrec)
        nll = (rec_loss.clone() + lc.get("perceptual_weight", 1.0) * p_loss).mean()
        l = self.discriminator(xrec)
        l = l.reshape(l.shape[0], -1).mean(-1)
        g_loss = sigmoid_ce(torch.ones_like(l), l).mean()
        d_weight = torch.tensor(float(lc["gen_loss_weight"]))
        g_loss = d_weight * 1.0 * g_loss
        cb = lc.get("quant_loss_weight", 1.0) * q["quant_loss"] + lc.get("entropy_loss_weight", 1.0) * q["entropy_loss"]
        loss = nll + g_loss + cb
        log = {"train/total_loss": loss, "train/codebook_quant_loss": q["quant_loss"],
               "train/codebook_entropy_loss": q["entropy_loss"], "train/codebook_sample_entropy_loss": q["sample_entropy"],
               "train/codebook_avg_entropy_loss": q["avg_entropy"], "train/codebook_loss": cb, "train/nll_loss": nll,
               "train/reconstruct_loss": rec_loss, "train/perceptual_loss": p_loss, "train/g_loss": g_loss}
        return loss, {k: float(v.detach().mean()) for k, v in log.items()}

    def discriminator_loss(self, x, xrec):
        real = self.discriminator(x.contiguous().detach())
        fake = self.discriminator(xrec.contiguous().detach())
        r, f = float(real.detach().mean()), float(fake.detach().mean())
        self.ema_real = self.ema_real * self.ema_decay + r * (1 - self.ema_decay)
        self.ema_fake = self.ema_fake * self.ema_decay + f * (1 - self.ema_decay)
        lecam = torch.relu(real - self.ema_fake).pow(2).mean() + torch.relu(self.ema_real - fake).pow(2).mean()
        hinge = 0.5 * (torch.relu(1. - real).mean() + torch.relu(1. + fake).mean())
        d_loss = 1.0 * (lecam * self.lc["lecam_loss_weight"] + hinge)
        log = {"train/disc_loss": d_loss, "train/logits_real": real, "train/logits_fake": fake, "train/lecam_loss": lecam}
        return d_loss, {k: float(v.detach().mean()) for k, v in log.items()}


class LitEma(nn.Module):
    def __init__(self, model, decay=0.999):
        super().__init__()
        self.register_buffer("decay", torch.tensor(decay, dtype=torch.float32))
        self.register_buffer("num_updates", torch.tensor(0, dtype=torch.int32))
        self.names = []
        for name, p in model.named_parameters():
            if p.requires_grad:
                s = name.replace(".", "")
                self.register_buffer(s, p.detach().clone())
                self.names.append((name, s))

    @torch.no_grad()
    def update(self, model):
        d = self.decay
        self.num_updates += 1
        warm = (1 + self.num_updates) / (10 + self.num_updates)
        if float(warm) < float(d):
            d = warm
        omd = 1.0 - d
        params = dict(model.named_parameters())
        bufs = dict(self.named_buffers())
        for name, s in self.names:
            bufs[s].sub_(omd * (bufs[s] - params[name]))


class TrainingModule(nn.Module):
    """The official training-module tree (encoder, decoder, loss, quantize, quant_conv, post_quant_conv,
    model_ema) sharing the tokenizer's submodules."""

    def __init__(self, cfg, lossconfig, use_ema=True):
        super().__init__()
        tok = Tokenizer(cfg)
        self.encoder, self.decoder = tok.encoder, tok.decoder
        self.loss = VQLoss(lossconfig)
        self.quantize, self.quant_conv, self.post_quant_conv = tok.quantize, tok.quant_conv, tok.post_quant_conv
        object.__setattr__(self, "tok", tok)
        self.model_ema = LitEma(self) if use_ema else None
        gen = [p for m in (self.encoder, self.decoder, self.quantize, self.quant_conv, self.post_quant_conv)
               for p in m.parameters()]
        self.gen_params = gen
        self.opt_gen = torch.optim.Adam(gen, lr=1e-4, betas=(0.5, 0.9))
        self.opt_disc = torch.optim.Adam(list(self.loss.discriminator.parameters()), lr=1e-4, betas=(0.5, 0.9))

    def train(self, mode=True):
        super().train(mode)
        self.loss.perceptual_loss.eval()
        return self

    def step(self, x):
        """One official training step: D loss -> Adam, G loss through the updated D -> Adam, EMA."""
        self.train()
        q = self.tok(x)
        d_loss, dlog = self.loss.discriminator_loss(x, q["xrec"])
        self.opt_disc.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_disc.step()
        g_loss, glog = self.loss.generator_loss(q, x, q["xrec"])
        self.opt_gen.zero_grad(set_to_none=True)
        torch.autograd.backward(g_loss, inputs=self.gen_params)
        self.opt_gen.step()
        if self.model_ema is not None:
            self.model_ema.update(self)
        dlog.update(glog)
        return dlog
