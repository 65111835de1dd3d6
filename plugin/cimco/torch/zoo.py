"""Model zoo with shapes only (random init, no weight downloads), in plain torch.nn.

ResNet-20/56 and VGG-16 for CIFAR-10 (32x32), ResNet-18/50 and MobileNetV2 at ImageNet
shapes (224x224). Architectures follow the papers: He et al., CVPR 2016 (ResNet; the CIFAR
variants of its Sec. 4.2 with identity shortcuts); Simonyan & Zisserman, ICLR 2015 (VGG-16,
CIFAR variant with one 512->10 classifier); Sandler et al., CVPR 2018 (MobileNetV2). The
transformers: DeiT-Tiny (ImageNet 224), BERT-base (128 tokens) and GPT-2 small (a 128-token
prompt, and one token decoded after it), whose sizes follow their papers (see :data:`ZOO`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from cimco.torch.export import example_input


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int, shortcut_conv: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.downsample = None
        self.pad = 0
        if stride != 1 or cin != cout:
            if shortcut_conv:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                                nn.BatchNorm2d(cout))
            else:  # option A: subsample and zero-pad channels (no weights)
                self.pad = cout - cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            x = self.downsample(x)
        elif self.pad:
            x = nn.functional.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return self.relu(out + x)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int, shortcut_conv: bool = True):
        super().__init__()
        cout = width * 4
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (self.downsample(x) if self.downsample is not None else x))


class ResNet(nn.Module):
    def __init__(self, block, depths: list[int], widths: list[int], classes: int, imagenet: bool,
                 shortcut_conv: bool = True):
        super().__init__()
        w0 = widths[0]
        if imagenet:
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            cin = 64
        else:
            self.conv1 = nn.Conv2d(3, w0, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(w0)
            self.maxpool = nn.Identity()
            cin = w0
        self.relu = nn.ReLU()
        stages = []
        for i, (d, w) in enumerate(zip(depths, widths)):
            blocks = []
            for j in range(d):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(cin, w, stride, shortcut_conv))
                cin = w * block.expansion
            stages.append(nn.Sequential(*blocks))
        for i, s in enumerate(stages, start=1):  # torchvision's names: layer1, layer2, ...
            setattr(self, f"layer{i}", s)
        self.n_stages = len(stages)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, self.n_stages + 1):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


class VGG16(nn.Module):
    CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]

    def __init__(self, classes: int = 10):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in self.CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(cin, v, 3, 1, 1), nn.BatchNorm2d(v), nn.ReLU()]
                cin = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(512, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
                   nn.BatchNorm2d(hidden), nn.ReLU6(),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    # (expansion t, channels c, repeats n, stride s) from Sandler et al. 2018, Table 2
    CFG = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
           (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, classes: int = 1000):
        super().__init__()
        layers: list[nn.Module] = [nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False),
                                                 nn.BatchNorm2d(32), nn.ReLU6())]
        cin = 32
        for t, c, n, s in self.CFG:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(nn.Sequential(nn.Conv2d(cin, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU6()))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(1280, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


class Block(nn.Module):
    """A transformer block: multi-head attention (``scaled_dot_product_attention``; causal, or
    over ``cached`` keys and values kept from earlier tokens), then a GELU MLP; pre-norm (BERT's
    post-norm moves the norms, not a MAC)."""

    def __init__(self, dim: int, heads: int, hidden: int, causal: bool = False, cached: int = 0):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.heads, self.causal, self.cached = heads, causal, cached
        if cached:  # the keys and values of the tokens before (a KV cache)
            self.register_buffer("k_cache", torch.zeros(1, heads, cached, dim // heads))
            self.register_buffer("v_cache", torch.zeros(1, heads, cached, dim // heads))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if self.cached:
            k, v = torch.cat([self.k_cache, k], 2), torch.cat([self.v_cache, v], 2)
        a = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        x = x + self.proj(a.transpose(1, 2).reshape(n, t, d))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.ln2(x))))


class DeiT(nn.Module):
    """DeiT-Tiny (Touvron et al., ICML 2021): 16x16 patches of a 224x224 image, 196 + a class
    token, 12 blocks of width 192, 3 heads, MLP 768; the head on the class token."""

    def __init__(self, classes: int = 1000, dim: int = 192, depth: int = 12, heads: int = 3):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 16, 16)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, 197, dim))
        self.blocks = nn.Sequential(*[Block(dim, heads, 4 * dim) for _ in range(depth)])
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = self.blocks(torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos)
        return self.head(self.norm(x[:, 0]))


class Encoder(nn.Module):
    """A stack of blocks on an embedded sequence (the token and position lookups and their sum
    do no MACs), then a head: BERT-base's pooler on the [CLS] token, or GPT-2's LM head (tied
    to the 50257-token embedding) on the last token, the next token's logits."""

    def __init__(self, dim: int, depth: int, heads: int, head_out: int, first: bool, causal: bool = False,
                 cached: int = 0):
        super().__init__()
        self.blocks = nn.Sequential(*[Block(dim, heads, 4 * dim, causal, cached) for _ in range(depth)])
        self.norm, self.head, self.first = nn.LayerNorm(dim), nn.Linear(dim, head_out), first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0] if self.first else x[:, -1])


# The sequence models, as functions of their length: BERT-base's tokens, GPT-2's prompt
# (prefill) or the tokens in its KV cache before the one decoded -> (model, input shape, tokens
# an inference processes).
SEQUENCE: dict[str, Callable[[int], tuple[Callable[[], nn.Module], tuple[int, ...], int]]] = {
    # BERT-base (Devlin et al., NAACL 2019): n embedded tokens, 12 blocks of 768, 12 heads
    "bert_base_seq128": lambda n: (lambda: Encoder(768, 12, 12, 768, first=True), (1, n, 768), n),
    # GPT-2 small (Radford et al., 2019): a causal prompt of n tokens, then one token decoded
    # with the n before it in the KV cache
    "gpt2_small_prefill128": lambda n: (lambda: Encoder(768, 12, 12, 50257, first=False, causal=True),
                                        (1, n, 768), n),
    "gpt2_small_decode128": lambda n: (lambda: Encoder(768, 12, 12, 50257, first=False, cached=n), (1, 1, 768), 1),
}
SEQUENCE_LENGTH = 128  # the bundled sequence models' length (their names say it)
# torch's attention on the CPU holds a block's scores whole: 12 heads x 4,096^2 floats are 0.8 GB
MAX_SEQUENCE_LENGTH = 2**12

ZOO: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "resnet20_cifar": (lambda: ResNet(BasicBlock, [3, 3, 3], [16, 32, 64], 10, False, False), (1, 3, 32, 32)),
    "resnet56_cifar": (lambda: ResNet(BasicBlock, [9, 9, 9], [16, 32, 64], 10, False, False), (1, 3, 32, 32)),
    "vgg16_cifar": (lambda: VGG16(10), (1, 3, 32, 32)),
    "resnet18_cifar": (lambda: ResNet(BasicBlock, [2, 2, 2, 2], [64, 128, 256, 512], 10, False), (1, 3, 32, 32)),
    "resnet18_imagenet": (lambda: ResNet(BasicBlock, [2, 2, 2, 2], [64, 128, 256, 512], 1000, True), (1, 3, 224, 224)),
    "resnet50_imagenet": (lambda: ResNet(Bottleneck, [3, 4, 6, 3], [64, 128, 256, 512], 1000, True), (1, 3, 224, 224)),
    "mobilenetv2_imagenet": (lambda: MobileNetV2(1000), (1, 3, 224, 224)),
    "deit_tiny_imagenet": (lambda: DeiT(), (1, 3, 224, 224)),
    **{name: f(SEQUENCE_LENGTH)[:2] for name, f in SEQUENCE.items()},
}


def tokens(name: str, length: int | None = None) -> int:
    """Tokens an inference of zoo model ``name`` processes (1 for the image models)."""
    return SEQUENCE[name](length or SEQUENCE_LENGTH)[2] if name in SEQUENCE else 1


def get(name: str, example: str = "random", seed: int = 0, length: int | None = None) -> tuple[nn.Module, torch.Tensor]:
    """A zoo model (eval mode, init seeded with 0) and an example input of its shape:
    ``random`` (standard normal from ``seed``) or ``zeros``; a sequence model (:data:`SEQUENCE`)
    at ``length`` tokens (default its own). The weights are random: export them without masks
    (an exact zero in them is chance, not pruning)."""
    if name not in ZOO:
        raise KeyError(name)
    if length is not None and name not in SEQUENCE:
        raise ValueError(f"zoo model {name!r} has no sequence length (sequence models: {', '.join(SEQUENCE)})")
    make, shape = SEQUENCE[name](length)[:2] if length is not None else ZOO[name]
    torch.manual_seed(0)
    return make().eval(), example_input(shape, example, seed)
