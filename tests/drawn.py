"""Layers drawn by hypothesis: small convs and linears with groups, strides, dilations,
rectangular and asymmetric kernels and padding, odd sizes (shapes nobody wrote the mapping
code for)."""

from __future__ import annotations

from hypothesis import strategies as st

from cimco.spec.workload import Layer


@st.composite
def layers(draw) -> Layer:
    groups = draw(st.sampled_from([1, 1, 2, 3, 4]))
    cin = groups * draw(st.integers(1, 24))
    cout = groups * draw(st.integers(1, 24))
    if draw(st.booleans()):
        return Layer(name="l", type="linear", in_channels=cin, out_channels=cout, groups=groups,
                     tokens=draw(st.integers(1, 5)))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = [draw(st.integers(0, 2)) for _ in range(4)]
    h = draw(st.integers((kh - 1) * dil[0] + 1, 24))
    w = draw(st.integers((kw - 1) * dil[1] + 1, 24))
    return Layer(name="l", type="conv", in_channels=cin, out_channels=cout, groups=groups,
                 input_hw=(h, w), kernel=(kh, kw), stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                 dilation=dil, padding=pads)
