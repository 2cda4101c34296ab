"""The `data` workload of npm run bench, PyTorch side: JPEGs of ImageNet-like sizes written from the skimage photos
(prep), the reference of the parity check (PIL + torchvision centre crops), and the timing of a torch DataLoader
with PIL/torchvision transforms: decode, Resize(size) (shorter side, bilinear), RandomCrop(size),
RandomHorizontalFlip, ToTensor, Normalize(0.5, 0.5) to float32 in [-1, 1], batches of p["batch"], p["workers"]
worker processes (persistent, prefetch_factor 2)."""
import glob
import os
import time

import torch
from PIL import Image
import torchvision.transforms as TF

SKIMAGE = "/usr/lib/python3/dist-packages/skimage/data"
PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "hubble_deep_field.jpg", "retina.jpg"]
# ImageNet-like sizes (the ILSVRC train set's typical 500 x 375 / 500 x 333 and portrait variants)
SIZES = [(500, 375), (500, 333), (375, 500), (500, 400), (400, 300), (500, 357), (333, 500), (640, 480)]


def prep(p, d):
    os.makedirs(d + "/images/x", exist_ok=True)
    photos = [f for f in PHOTOS if os.path.exists(os.path.join(SKIMAGE, f))]
    if not photos:
        raise SystemExit("no skimage photos in " + SKIMAGE + " (Debian package python3-skimage)")
    for i in range(p["images"]):
        im = Image.open(os.path.join(SKIMAGE, photos[i % len(photos)])).convert("RGB")
        im = im.resize(SIZES[i % len(SIZES)], Image.BILINEAR)
        im.save(d + "/images/x/%05d.jpg" % i, quality=90)
    return {"ok": True}


def files(d):
    return sorted(glob.glob(d + "/images/x/*.jpg"))


def reference(p, d):
    """Centre crops by torchvision (what ours decodes in the parity check)."""
    tf = TF.Compose([TF.Resize(p["size"]), TF.CenterCrop(p["size"]), TF.ToTensor(), TF.Normalize([0.5] * 3, [0.5] * 3)])
    return {"img/%d" % i: tf(Image.open(f).convert("RGB")) for i, f in enumerate(files(d))}


class Images(torch.utils.data.Dataset):
    def __init__(self, paths, size):
        self.paths = paths
        self.tf = TF.Compose([TF.Resize(size), TF.RandomCrop(size), TF.RandomHorizontalFlip(), TF.ToTensor(),
                              TF.Normalize([0.5] * 3, [0.5] * 3)])

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return self.tf(Image.open(self.paths[i]).convert("RGB"))


def time_data(p, d, rss_mb):
    loader = torch.utils.data.DataLoader(Images(files(d), p["size"]), batch_size=p["batch"], shuffle=True,
                                         num_workers=p["workers"], persistent_workers=p["workers"] > 0,
                                         prefetch_factor=2 if p["workers"] > 0 else None)

    def one_pass():
        n = 0
        for b in loader:
            n += b.shape[0]
        assert n == p["images"]

    for _ in range(p["warmup"]):
        one_pass()
    base = rss_mb()
    times = []
    for _ in range(p["reps"]):
        t0 = time.perf_counter()
        one_pass()
        times.append(time.perf_counter() - t0)
    return times, base
