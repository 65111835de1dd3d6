"""The bundled transformers on the MARS-like system, its digital variant and with a digital unit: docs/torch.md.

Maps DeiT-Tiny, BERT-base (128 tokens) and GPT-2 small (a 128-token prompt; one token decoded
with 128 in the KV cache) with the cimco backend on the MARS-like system, on its variant with
Chih's digital adder-tree macro, and on it with a digital unit for the matmuls of activations
(:data:`UNIT`), each with a vector unit for the non-MAC work (:data:`VECTOR`), default execution
(weights resident when they fit, else reloaded), and prints per network and system: MACs with
weights (static) and of matmuls of activations (dynamic: Q K^T, softmax(Q K^T) V, their operand
written into the macros at every run, or on the digital unit), energy per inference and per
token, TOPS/W (all, on chip, macros), inferences per second, the dynamic layers' and the vector
unit's shares of the energy, the KV cache's appended bits, and the weights mode. Last
line: RESULT bert_uj_per_token=... bert_on_chip_uj_per_token=... ... (the MARS-like system).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NETS = ("deit_tiny_imagenet", "bert_base_seq128", "gpt2_small_prefill128", "gpt2_small_decode128")
# A digital unit beside the macros for the matmuls of activations (cimco.digital): an 8-bit
# multiply 0.2 pJ + a 32-bit add 0.1 pJ at 45 nm (M. Horowitz, ISSCC 2014, "Computing's energy
# problem"), not scaled to 28 nm; 256 MACs a cycle at 1 GHz and 0.1 mm^2 assumed.
UNIT = {"energy_per_mac_j": {"value": 0.3e-12,
                             "source": "Horowitz, ISSCC 2014 (45 nm): 8b multiply 0.2 pJ + 32b add 0.1 pJ"},
        "macs_per_s": 2.56e11, "area_m2": {"value": 0.1e-6, "source": "assumed"}}
# A vector unit for the non-MAC work (cimco.vector): an FP16 add 0.4 pJ and multiply 1.1 pJ at
# 45 nm (Horowitz, ISSCC 2014), their mean, not scaled; 32 lanes at 1 GHz and 0.05 mm^2 assumed.
VECTOR = {"energy_per_op_j": {"value": 0.75e-12,
                              "source": "Horowitz, ISSCC 2014 (45 nm): mean of FP16 add 0.4 pJ and multiply 1.1 pJ"},
          "ops_per_s": 3.2e10, "area_m2": {"value": 0.05e-6, "source": "assumed"}}
SYSTEMS = {"analog (MARS-like)": ("mars_macro_28nm", None), "digital (Chih)": ("chih_isscc_2021", None),
           "analog + digital unit": ("mars_macro_28nm", UNIT)}


def main() -> int:
    import cimco
    from cimco.spec import load
    from cimco.spec.load import read_yaml
    from cimco.spec.system import SystemSpec
    from cimco.sweeps import _system_data

    print("| network | system | MACs static / dynamic | energy uJ (per token) | on chip uJ per token "
          "| TOPS/W all / on chip / macros | inferences/s | dynamic share | non-MAC share | KV cache kb | weights |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    result = {}
    for label, (macro, unit) in SYSTEMS.items():
        data = _system_data(ROOT / "arch_specs/mars_system.yaml")
        if macro != "mars_macro_28nm":
            data["macro"] = read_yaml(ROOT / f"arch_specs/{macro}.yaml")
        if unit is not None:
            data["digital_unit"] = unit
        data["vector_unit"] = VECTOR
        system = SystemSpec.model_validate(data)
        for name in NETS:
            workload = load(ROOT / f"workloads/{name}.yaml")
            r = cimco.map(system, workload).data
            t = r["totals"]
            dynamic = {x.name for x in workload.layers if x.dynamic}
            tokens = t["tokens"]
            static_macs = sum(x.macs * x.repeat for x in workload.layers if not x.dynamic)
            share = sum(x["energy_j"] for x in r["layers"] if x["name"] in dynamic) / t["energy_j"]
            uj = t["energy_j"] * 1e6
            chip = (t["energy_j"] - r["energy_by_component"].get("DRAM", 0.0)) * 1e6 / tokens
            per_token = f" ({uj / tokens:.2f})" if tokens > 1 else ""
            print(f"| {name} | {label} | {static_macs / 1e6:,.0f} M / {(t['dense_macs'] - static_macs) / 1e6:,.1f} M "
                  f"| {uj:,.1f}{per_token} | {chip:.2f} | {t['tops_per_w']:.2f} / {t['tops_per_w_on_chip']:.2f} / "
                  f"{t['tops_per_w_macro']:.1f} | {t['fps']:,.1f} | {share:.1%} | {t['vector_share']:.1%} | "
                  f"{t['kv_cache_bits'] / 1e3:,.1f} | {t['weights']} |", flush=True)
            if label == "analog (MARS-like)":
                result[name] = uj / tokens
                result[f"{name}_chip"] = chip
    print(f"RESULT bert_uj_per_token={result['bert_base_seq128']:.3f} "
          f"bert_on_chip_uj_per_token={result['bert_base_seq128_chip']:.3f} "
          f"gpt2_prefill_uj_per_token={result['gpt2_small_prefill128']:.3f} "
          f"gpt2_decode_uj_per_token={result['gpt2_small_decode128']:.3f} deit_uj={result['deit_tiny_imagenet']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
