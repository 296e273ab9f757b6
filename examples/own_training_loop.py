"""Background resampling (Li & Vasconcelos, CVPR 2020) in your own training loop: your model, your
ID DataLoader, your background tensor. Pre-train, learn one weight per background item
(Algorithm 1), keep 10% of the pool, fine-tune with the Outlier Exposure loss, evaluate."""

import argparse
import copy

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits, load_sample_images
from torch.utils.data import DataLoader, TensorDataset

from bgresample import BackgroundPool, BackgroundResampler, OODMetrics, UniformityLoss, msp

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=10)
epochs = parser.parse_args().epochs
torch.manual_seed(0)
digits = load_digits()  # 8x8 digits: 0-4 are ID, 5-9 are OOD
x, y = torch.tensor(digits.images, dtype=torch.float32).flatten(1) / 16, torch.tensor(digits.target)
x_id, y_id, x_ood = x[y < 5], y[y < 5], x[y >= 5]
train = DataLoader(TensorDataset(x_id[:600], y_id[:600]), batch_size=64, shuffle=True)
photos = torch.tensor(np.array(load_sample_images().images), dtype=torch.float32).mean(-1) / 255
patches = photos.unfold(1, 8, 8).unfold(2, 8, 8).reshape(-1, 64)  # 8x8 patches of two photos
pool = BackgroundPool(torch.cat([patches, torch.rand(1000, 64), x_ood[:50] * 0.5]))
model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 5))
uniformity = UniformityLoss(reduction="none")  # eq. 4, one value per background item


def train_epochs(n: int, background: BackgroundResampler | torch.Tensor | None = None) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    resampling = isinstance(background, BackgroundResampler)
    for xb, yb in (batch for _ in range(n) for batch in train):
        loss = F.cross_entropy(model(xb), yb)
        if resampling:  # draw with p_i (eq. 11), weight each loss by r_i (eq. 12)
            idx = background.draw(len(xb))
            per_item = uniformity(model(pool[idx]))
            loss = loss + 0.5 * background.weighted_loss(idx, per_item)
        elif background is not None:  # a fixed subset, drawn uniformly
            idx = background[torch.randint(len(background), (len(xb),))]
            loss = loss + 0.5 * uniformity(model(pool[idx])).mean()
        opt.zero_grad(), loss.backward(), opt.step()
        if resampling:
            background.step(idx, per_item)  # weight ascent on the detached losses


train_epochs(epochs)  # 1. pre-train on ID data alone
pretrained = copy.deepcopy(model.state_dict())
resampler = BackgroundResampler(len(pool))
train_epochs(epochs, resampler)  # 2. Algorithm 1: learn one weight per pool item
subset = resampler.select(gamma=0.1)  # 3. keep 10% of the pool, by the learned weights
model.load_state_dict(pretrained)
train_epochs(epochs, subset)  # 4. fine-tune the pre-trained model on the subset (OE loss)
with torch.no_grad():  # test OOD: the digits 5-9 that are not in the pool
    metrics = OODMetrics().update(msp(model(x_id[600:])), torch.zeros(len(x_id) - 600))
    result = metrics.update(msp(model(x_ood[50:])), torch.ones(len(x_ood) - 50)).compute()
print(f"kept {len(subset)} of {len(pool)} pool items")
print("FPR95 {fpr95:.2f}  AUROC {auroc:.2f}  AUPR {aupr:.2f}  (%, OOD positive)".format(**result))
