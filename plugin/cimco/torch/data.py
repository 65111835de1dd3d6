"""Real data without downloads: scikit-learn's bundled handwritten digits (8x8, 1,797).

Every training and evaluation entry point takes plain torch DataLoaders, so CIFAR-10 plugs
in the same way, e.g. ``torchvision.datasets.CIFAR10(root, train=True, download=True,
transform=ToTensor())`` wrapped in a DataLoader (not run here: no network).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset


def inputs_of(batch):
    """The model input of a batch: a tensor, or the first item of an ``(x, y)`` pair."""
    return batch[0] if isinstance(batch, (list, tuple)) else batch


def digits(seed: int = 0, batch: int = 64) -> tuple[DataLoader, DataLoader, DataLoader]:
    """Train / validation / held-out test loaders (60/20/20 %, stratified, fixed seed).

    Pixels (0..16) are scaled to [-1, 1]. The test split is never used for tuning.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images.astype(np.float32) / 8.0 - 1.0)[:, None]
    y = d.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    x_tr, x_va, y_tr, y_va = train_test_split(x_tr, y_tr, test_size=0.25, random_state=seed,
                                              stratify=y_tr)
    g = torch.Generator().manual_seed(seed)

    def loader(a, b, shuffle):
        return DataLoader(TensorDataset(torch.from_numpy(a), torch.from_numpy(b)), batch_size=batch,
                          shuffle=shuffle, generator=g if shuffle else None)

    return loader(x_tr, y_tr, True), loader(x_va, y_va, False), loader(x_te, y_te, False)


def digits_cnn() -> torch.nn.Sequential:
    """A small CNN for 8x8 digits with batch norm (folded before quantization)."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 2 * 2, 10),
    )


def train(model: torch.nn.Module, loader: DataLoader, epochs: int, lr: float = 1e-3,
          step_hook=None, seed: int = 0) -> torch.nn.Module:
    """Adam + cross-entropy; ``step_hook(model, epoch)`` runs after every optimizer step."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for epoch in range(epochs):
        model.train()
        for x, y in loader:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            if step_hook is not None:
                step_hook(model, epoch)
    return model.eval()


def accuracy(model, loader: DataLoader, forward=None) -> float:
    """Top-1 accuracy; ``forward(x)`` overrides ``model(x)`` (integer or CIM paths)."""
    model.eval()
    hit = n = 0
    with torch.no_grad():
        for x, y in loader:
            out = forward(x) if forward is not None else model(x)
            hit += int((out.argmax(dim=1) == y).sum())
            n += len(y)
    return hit / n
