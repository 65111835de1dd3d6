"""Decoders, prefill and decode (issue 23 item 3): the tokens an inference processes and the
keys and values it appends to a KV cache, counted by hand from GPT-2 small's dimensions, and
their cost in a mapped report."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cimco.cli import main
from cimco.spec import load

ROOT = Path(__file__).resolve().parent.parent
BLOCKS, WIDTH = 12, 768  # GPT-2 small (Radford et al., 2019)


@pytest.mark.parametrize(("name", "tokens", "kv"), [
    ("gpt2_small_prefill128", 128, 128 * 2 * WIDTH),  # the prompt's keys and values, per block
    ("gpt2_small_decode128", 1, 2 * WIDTH),  # the decoded token's
    ("bert_base_seq128", 128, 0),  # an encoder keeps no cache
])
def test_bundled_decoders_carry_tokens_and_kv_cache_writes(name: str, tokens: int, kv: int) -> None:
    w = load(ROOT / f"workloads/{name}.yaml")
    assert w.tokens == tokens
    assert sum(x.kv_cache_writes for x in w.layers) == BLOCKS * kv


def _export(tmp_path: Path, *args: str) -> tuple[int, str]:
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["export", *args, "--out", str(tmp_path / "o")])
    return code, err.getvalue()


def test_export_tokens_sets_the_zoo_sequence_length(tmp_path: Path) -> None:
    """GPT-2 prefill of 16 tokens: its name says so, 16 tokens, 16 x 2 x 768 cached per block,
    causal scores over 16 x 17 / 2 kept products per head; decode after 16 cached: 17 keys."""
    assert _export(tmp_path, "--model", "gpt2_small_prefill128", "--tokens", "16") == (0, "")
    w = load(tmp_path / "o/gpt2_small_prefill16.yaml")
    assert w.tokens == 16 and sum(x.kv_cache_writes for x in w.layers) == BLOCKS * 16 * 2 * WIDTH
    scores = sum(x.macs * x.repeat for x in w.layers if x.dynamic and ".scores" in x.name)
    assert scores == BLOCKS * 12 * 64 * (16 * 17 // 2)
    assert _export(tmp_path, "--model", "gpt2_small_decode128", "--tokens", "16") == (0, "")
    w = load(tmp_path / "o/gpt2_small_decode16.yaml")
    assert w.tokens == 1 and {x.out_channels for x in w.layers if x.dynamic and ".scores" in x.name} == {17}


@pytest.mark.parametrize(("args", "says"), [
    (("--model", "gpt2_small_prefill128", "--tokens", "0"), "--tokens"),
    (("--model", "bert_base_seq128", "--tokens", "-3"), "--tokens"),
    (("--model", "gpt2_small_prefill128", "--tokens", "4097"), "from 1 to 4096"),
    (("--model", "resnet20_cifar", "--tokens", "8"), "no sequence length"),
    (("--model", "test_sequence:odd_heads", "--input-shape", "1,4,10"), "divisible"),
])
def test_bad_sequences_exit_2(tmp_path: Path, args: tuple, says: str, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    code, err = _export(tmp_path, *args)
    assert code == 2 and says in err and "Traceback" not in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").glob("*.yaml"))


def odd_heads():
    """Attention of width 10 over 3 heads (3 does not divide 10)."""
    from torch import nn

    return nn.TransformerEncoderLayer(10, 3, batch_first=True)


def test_kv_cache_writes_and_energy_per_token_in_the_report(tmp_path: Path) -> None:
    """A decoder layer's cache writes are DRAM writes at its output bits, in energy_j; energy per
    token is energy over the workload's tokens."""
    import cimco

    system = load(ROOT / "arch_specs/mars_system.yaml")
    layer = {"name": "scores", "type": "linear", "in_channels": 64, "out_channels": 32, "tokens": 8, "repeat": 2,
             "dynamic": True}
    base = {"kind": "workload", "name": "w", "source": "test", "bits": {"input": 8, "weight": 8, "output": 6},
            "tokens": 8}
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({**base, "layers": [layer]}))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({**base, "layers": [{**layer, "kv_cache_writes": 1024}]}))
    plain, cached = (cimco.map(system, load(tmp_path / f"{n}.yaml"), backend="cimco").data for n in "ab")
    bits = 1024 * 6
    assert cached["totals"]["kv_cache_bits"] == bits and plain["totals"]["kv_cache_bits"] == 0
    dram = {n: r["layers"][0]["action_counts"].get("DRAM.write", 0) for n, r in (("a", plain), ("b", cached))}
    assert dram["b"] - dram["a"] == pytest.approx(bits)
    assert cached["totals"]["energy_j"] - plain["totals"]["energy_j"] == pytest.approx(
        bits * system.dram.energy_per_bit_j.value)
    assert cached["totals"]["energy_per_token_j"] == pytest.approx(cached["totals"]["energy_j"] / 8)
