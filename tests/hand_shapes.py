"""Layer shapes of the zoo networks written out by hand from the papers: the independent
count the torch export is checked against (no torch here).

ResNet (He et al., CVPR 2016; CIFAR variants of its Sec. 4.2 with identity shortcuts, and
the CIFAR ResNet-18 with a 3x3 stem and no max-pool), VGG-16 (Simonyan & Zisserman, ICLR
2015; CIFAR variant with one 512->10 classifier), MobileNetV2 (Sandler et al., CVPR 2018,
Table 2).
"""

from __future__ import annotations


def conv(name, cin, cout, hw, k=3, stride=1, padding=None):
    d = {"name": name, "type": "conv", "in_channels": cin, "out_channels": cout,
         "input_hw": [hw, hw], "kernel": k, "stride": stride,
         "padding": k // 2 if padding is None else padding}
    return d


def fc(name, cin, cout):
    return {"name": name, "type": "linear", "in_channels": cin, "out_channels": cout}


def basic_blocks(prefix, cin, cout, hw, n, stride, shortcut_conv):
    layers = []
    for i in range(n):
        s = stride if i == 0 else 1
        c_in = cin if i == 0 else cout
        layers.append(conv(f"{prefix}.{i}.conv1", c_in, cout, hw, 3, s))
        hw_out = (hw + 2 - 3) // s + 1
        layers.append(conv(f"{prefix}.{i}.conv2", cout, cout, hw_out, 3, 1))
        if i == 0 and (s != 1 or c_in != cout) and shortcut_conv:
            layers.append(conv(f"{prefix}.{i}.downsample", c_in, cout, hw, 1, s, 0))
        hw = hw_out
    return layers, hw


def resnet18(imagenet: bool):
    if imagenet:
        layers, hw = [conv("conv1", 3, 64, 224, 7, 2, 3)], 56  # then 3x3/2 max-pool
    else:
        layers, hw = [conv("conv1", 3, 64, 32, 3, 1, 1)], 32
    cin = 64
    for i, (c, s) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], start=1):
        blk, hw = basic_blocks(f"layer{i}", cin, c, hw, 2, s, shortcut_conv=True)
        layers += blk
        cin = c
    layers.append(fc("fc", 512, 1000 if imagenet else 10))
    return layers


def resnet_cifar(n):
    # CIFAR ResNet-(6n+2) (He et al. 2016, Sec. 4.2): option-A identity shortcuts (no conv).
    layers, hw, cin = [conv("conv1", 3, 16, 32)], 32, 16
    for i, (c, s) in enumerate([(16, 1), (32, 2), (64, 2)], start=1):
        blk, hw = basic_blocks(f"layer{i}", cin, c, hw, n, s, shortcut_conv=False)
        layers += blk
        cin = c
    layers.append(fc("fc", 64, 10))
    return layers


def vgg16_cifar():
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    layers, hw, cin, i = [], 32, 3, 0
    for v in cfg:
        if v == "M":
            hw //= 2
            continue
        layers.append(conv(f"features.{i}", cin, v, hw))
        cin, i = v, i + 1
    layers.append(fc("classifier", 512, 10))
    return layers


def resnet50():
    layers, hw, cin = [conv("conv1", 3, 64, 224, 7, 2, 3)], 56, 64
    for i, (w, n, s) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], start=1):
        for j in range(n):
            st = s if j == 0 else 1
            layers.append(conv(f"layer{i}.{j}.conv1", cin, w, hw, 1, 1, 0))
            layers.append(conv(f"layer{i}.{j}.conv2", w, w, hw, 3, st, 1))
            hw_out = (hw + 2 - 3) // st + 1
            layers.append(conv(f"layer{i}.{j}.conv3", w, 4 * w, hw_out, 1, 1, 0))
            if j == 0:
                layers.append(conv(f"layer{i}.{j}.downsample", cin, 4 * w, hw, 1, st, 0))
            cin, hw = 4 * w, hw_out
    layers.append(fc("fc", 2048, 1000))
    return layers


def mobilenetv2():
    layers, hw, cin = [conv("stem", 3, 32, 224, 3, 2, 1)], 112, 32
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(n):
            st, hidden = (s if i == 0 else 1), cin * t
            if t != 1:
                layers.append(conv("expand", cin, hidden, hw, 1, 1, 0))
            d = conv("depthwise", hidden, hidden, hw, 3, st, 1)
            d["groups"] = hidden
            layers.append(d)
            hw = (hw + 2 - 3) // st + 1
            layers.append(conv("project", hidden, c, hw, 1, 1, 0))
            cin = c
    layers += [conv("head", cin, 1280, hw, 1, 1, 0), fc("classifier", 1280, 1000)]
    return layers


NETS = {
    "resnet20_cifar": lambda: resnet_cifar(3),
    "resnet56_cifar": lambda: resnet_cifar(9),
    "vgg16_cifar": vgg16_cifar,
    "resnet18_cifar": lambda: resnet18(False),
    "resnet18_imagenet": lambda: resnet18(True),
    "resnet50_imagenet": resnet50,
    "mobilenetv2_imagenet": mobilenetv2,
}


def transformer(tokens: int, dim: int, depth: int, heads: int, head: tuple[int, int, int],
                attended: int, extra_static: int = 0) -> tuple[int, int]:
    """(static, dynamic) MACs of a transformer, by hand: per block, the Q, K, V and output
    projections (4 d^2 per token) and the MLP (2 x d x 4d per token); per block and head, Q K^T
    and softmax(Q K^T) V, each (d / heads) per attended (query, key) pair; plus the head
    (tokens x in x out) and ``extra_static`` (a patch embedding)."""
    per_token = 4 * dim * dim + 2 * dim * 4 * dim
    static = depth * tokens * per_token + head[0] * head[1] * head[2] + extra_static
    dynamic = depth * heads * 2 * attended * (dim // heads)
    return static, dynamic


TRANSFORMERS = {
    # DeiT-Tiny (Touvron et al., ICML 2021): 197 tokens (196 patches + class), d 192, 12 blocks,
    # 3 heads; every token attends all 197; head 192 -> 1000 on the class token; the patch
    # embedding is a 16x16 stride-16 conv, 3 -> 192, over 14 x 14 positions
    "deit_tiny_imagenet": transformer(197, 192, 12, 3, (1, 192, 1000), 197 * 197, 14 * 14 * 192 * 3 * 16 * 16),
    # BERT-base (Devlin et al., NAACL 2019): 128 tokens, d 768, 12 blocks, 12 heads; pooler 768 -> 768
    "bert_base_seq128": transformer(128, 768, 12, 12, (1, 768, 768), 128 * 128),
    # GPT-2 small (Radford et al., 2019): causal, token i attends 0..i: 128 x 129 / 2 pairs; LM
    # head 768 -> 50257 on the last token
    "gpt2_small_prefill128": transformer(128, 768, 12, 12, (1, 768, 50257), 128 * 129 // 2),
    # one token decoded after 128 cached: it attends 129 keys
    "gpt2_small_decode128": transformer(1, 768, 12, 12, (1, 768, 50257), 129),
}
