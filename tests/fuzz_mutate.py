"""Mutated copies of the bundled specs and workloads, to fuzz the ``cimco`` CLI with.

Shared by tests/test_fuzz.py (hypothesis draws every choice, so failures shrink) and
scripts/fuzz_specs.py (a seeded ``random.Random``, so runs reproduce). A *chooser* is anything
with ``choice``, ``randint`` and ``randbytes``, as ``random.Random`` has.

A :class:`Case` is a directory of files and what to run on it: ``cimco specs validate TARGET``,
or, with ``workload``, what ``cimco map`` does before mapping (``load_pair`` + ``masks.resolve``).
``bad`` marks inputs known to be invalid, so exit 0 on them is a bug too ("accepted_bad").
tests/fuzz_sandbox.py runs a case.
"""

from __future__ import annotations

import copy
import functools
import io
import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
SYSTEM, MACRO = "mars_system.yaml", "mars_macro_28nm.yaml"
SPECIAL = ["/dev/null", "dir", "missing.yaml", "/dev/zero", "fifo", "huge"]  # fuzz_sandbox.write makes them
WEIRD = ["str", [1, 2], {"a": 1}, None, True, 0, -1, 10**400, math.inf, -math.inf, math.nan, ".nan", ".inf",
         "x" * 200_000]
UNITS = {"tech_node_m": 1e9, "voltage_v": 1e3, "reference_voltage_v": 1e3, "cycle_s": 1e9}  # value in nm, mV, ns
BOMB = "FUZZ_BOMB_PLACEHOLDER"
TAGS = ["!!str 12", "!!int 0x1F", "!!bool yes", "!!null ''", "!!binary aGVsbG8=", "!!timestamp 2001-12-14",
        "!!set {a: null}", "!!omap [{a: 1}]", "!!pairs [{a: 1}, {a: 2}]", "!!float 1e999", "!custom 1",
        "!!python/name:os.system", "!!python/object/apply:os.system ['true']"]
ALIAS_BOMB = "[&a0 [l, l, l, l, l, l, l, l, l], " + ", ".join(
    f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)) + "]"


@dataclass
class Case:
    kind: str
    detail: str
    files: dict[str, bytes | str]  # name -> content; the str "fifo", "dir" or "huge" makes that
    target: str  # the file validated (a name in files or an absolute path); the system with `workload`
    workload: str | None = None
    bad: bool = False
    argv: list[str] | None = None  # a CLI case (make_cli_case): the command line, "{d}" the directory


def bundled() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for d in ("arch_specs", "workloads") for p in sorted((ROOT / d).glob("*.yaml"))}


@functools.cache
def _parsed(text: bytes):
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _load(text: bytes):
    return copy.deepcopy(_parsed(text))


def _dump(data) -> str:
    return yaml.dump(data, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False,
                     default_flow_style=False)


def _slots(node, out: list) -> list:
    """Every (container, key) pair under ``node``, depth first."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        out.append((node, k))
        _slots(v, out)
    return out


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _absurd(v) -> bool:
    return _number(v) and (v != v or v in (math.inf, -math.inf) or v < 0)


def mutate_data(r, data: dict, kind: str) -> tuple[str, bool]:
    """Mutate parsed YAML in place; (detail, known bad)."""
    slots = _slots(data, [])
    if kind == "unit":
        hits = [(p, k) for p, k in slots if k in UNITS]
        if hits:
            p, k = r.choice(hits)
            p[k] *= UNITS[k]
            return f"{k}={p[k]}", True
        kind = "scale"
    if kind in ("delete_key", "typo_key"):
        p, k = r.choice([(p, k) for p, k in slots if isinstance(p, dict)])
        if kind == "delete_key":
            del p[k]
            return k, False
        new = r.choice([t for t in (k + "s", k[:-1], k.upper(), k + " ", k.replace("_", "-")) if t != k])
        p[new] = p.pop(k)
        return f"{k}->{new}", True
    if kind == "key_type":
        p, k = r.choice([(p, k) for p, k in slots if isinstance(p, dict)])
        new = r.choice([1, True, None, 1.5, "", "a.b", "x" * 10_000])
        p[new] = p.pop(k)
        return f"{k}->{str(new)[:10]}", True
    if kind in ("alias", "recursive"):  # the dumper writes &anchors and *aliases for shared objects
        p, k = r.choice(slots)
        if kind == "recursive":
            p[k] = data
            return f"{k}=*root", True
        q, j = r.choice(slots)
        p[k] = q[j]
        return f"{k}=*{j}", False
    if kind == "kind":
        data["kind"] = v = r.choice([x for x in ("macro", "system", "workload", ["macro"], {"kind": 1}, None, 7)
                                     if x != data.get("kind")])
        return repr(v), True
    if kind == "scale":
        nums = [(p, k) for p, k in slots if _number(p[k])] or slots
        p, k = r.choice(nums)
        f = r.choice([-1, 1e-9, 1e9])
        old, p[k] = p[k], p[k] * f if _number(p[k]) else p[k]
        bad = k != "seed" and (_absurd(p[k]) or (k in UNITS and f != -1))
        return f"{k}={old}*{f}", bad
    p, k = r.choice(slots)
    if kind == "retype":
        p[k] = v = r.choice(WEIRD)
        return f"{k}={str(v)[:20]}", _absurd(v) and not (k == "seed" and v == -1)
    p[k] = BOMB  # alias_bomb, depth_bomb, tag: spliced into the text by mutate_file
    return f"{k}", True


def mutate_file(r, text: bytes, kind: str) -> tuple[bytes, str, bool]:
    """One mutation of one YAML file: (new content, detail, known bad)."""
    if kind == "invalid_utf8":
        i = r.randint(0, len(text))
        return text[:i] + r.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80"]) + text[i:], "", True
    if kind == "nul":
        i = r.randint(0, len(text))
        return text[:i] + b"\x00" + text[i:], f"at {i}", True
    if kind == "garbage":
        return r.randbytes(r.randint(1, 2000)), "", True
    if kind == "empty":
        return b"", "", True
    if kind == "merge":
        m = r.choice(["{}", "{extra_key: 1}", "5", "*nowhere", "[{extra_key: 1}, 7]"])
        return f"<<: {m}\n".encode() + text, m, m != "{}"
    if kind == "truncate":
        i = r.randint(0, len(text))
        return text[:i], f"at {i}", False
    if kind == "dup_key":
        lines = text.split(b"\n")
        keyed = [i for i, ln in enumerate(lines) if b":" in ln and not ln.lstrip().startswith(b"#")]
        i = r.choice(keyed)
        dup = lines[i].split(b":")[0].replace(b"- ", b"  ", 1) + b": " + r.choice([b"1", b"0", b"x", b"[]", b"{}"])
        return b"\n".join(lines[:i + 1] + [dup] + lines[i + 1:]), lines[i].strip()[:40].decode(), True
    data = _load(text)
    detail, bad = mutate_data(r, data, kind)
    out = _dump(data)
    if kind == "alias_bomb":
        out = out.replace(BOMB, ALIAS_BOMB)
    elif kind == "depth_bomb":
        d = r.choice([50, 400, 1000, 30_000])
        out = out.replace(BOMB, r.choice(["[" * d + "]" * d, "{a: " * d + "1" + "}" * d]))
        detail += f" depth {d}"
    elif kind == "tag":
        t = r.choice(TAGS)
        out = out.replace(BOMB, t)
        detail, bad = f"{detail}: {t}", t.startswith(("!!python", "!custom", "!!float"))
    return out.encode(), detail, bad


FILE_KINDS = ["delete_key", "typo_key", "key_type", "retype", "scale", "kind", "unit", "alias", "recursive", "tag",
              "alias_bomb", "depth_bomb", "merge", "invalid_utf8", "nul", "garbage", "empty", "truncate", "dup_key"]
CASE_KINDS = ["special_file", "macro_ref", "sparsity", "npz", "mask_ref"]
KINDS = FILE_KINDS + CASE_KINDS


def _weight_shape(layer: dict) -> tuple[int, ...]:
    if layer.get("type") == "linear":
        return (layer["out_channels"], layer["in_channels"])
    k = layer.get("kernel", 1)
    r, s = (k, k) if isinstance(k, int) else k
    return (layer["out_channels"], layer["in_channels"] // layer.get("groups", 1), r, s)


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


@functools.cache
def _zip_bomb() -> bytes:
    """A ~5 MB .npz whose one array is 1 GiB of zeros (1 << 30 bools)."""
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "|b1", "fortran_order": False, "shape": (1 << 30,)})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z, \
            z.open("bomb.npy", "w", force_zip64=True) as f:
        f.write(head.getvalue())
        for _ in range(64):
            f.write(bytes(1 << 24))
    return buf.getvalue()


def npz_variant(r, name: str, shape: tuple[int, ...]) -> tuple[bytes | str, str, bool]:
    """A mask archive for layer ``name`` of weight ``shape``: (content, detail, known bad)."""
    v = r.choice(["ok", "empty", "corrupt_zip", "truncated", "npy_renamed", "structured", "str_dtype", "nan",
                  "wrong_shape", "scalar", "other_name", "object", "complex", "huge_header", "zip_bomb"])
    arrays, bad = {name: np.ones(shape, bool)}, True
    if v == "npy_renamed":
        return _npy(arrays[name]), v, True
    if v == "zip_bomb":
        return _zip_bomb(), v, True
    if v == "huge_header":
        head = io.BytesIO()
        np.lib.format.write_array_header_1_0(head, {"descr": "|b1", "fortran_order": False, "shape": (1 << 22,) * 2})
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr(name + ".npy", head.getvalue())  # claims 16 TB, holds none
        return buf.getvalue(), v, True
    if v == "ok" or v == "nan":
        arrays, bad = {name: np.full(shape, np.nan) if v == "nan" else np.ones(shape, bool)}, False
    elif v == "empty":
        arrays = {}
    elif v == "structured":
        arrays = {name: np.zeros(shape, dtype=[("a", "i4"), ("b", "f4")])}
    elif v == "str_dtype":
        arrays = {name: np.full(shape, "x")}
    elif v == "wrong_shape":
        arrays = {name: np.ones(shape[::-1] + (2,), bool)}
    elif v == "scalar":
        arrays = {name: np.array(1)}
    elif v == "other_name":
        arrays = {name + "_": arrays[name]}
    elif v == "complex":
        arrays = {name: np.ones(shape, complex)}
    elif v == "object":
        arrays = {name: np.array([None, 1], dtype=object)}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    data = buf.getvalue()
    if v in ("corrupt_zip", "truncated"):
        data = b"PK\x03\x04" + r.randbytes(200) if v == "corrupt_zip" else data[:r.randint(1, len(data) - 1)]
    return data, v, bad


def _special(case: Case, s: str) -> str:
    """Point at ``s`` (see SPECIAL); the case becomes known bad."""
    if s in ("fifo", "dir", "huge"):
        case.files[s] = s
    case.bad = True
    return s


def make_case(r, files: dict[str, bytes]) -> Case:
    """One mutated input, every choice drawn from ``r``."""
    kind = r.choice(KINDS)
    arch = {n: t for n, t in files.items() if b"kind: workload" not in t}
    workloads = sorted(n for n, t in files.items() if n not in arch)
    pair = kind in ("sparsity", "npz", "mask_ref") or (kind in FILE_KINDS and r.choice([False, True]))
    wl = r.choice(sorted(workloads, key=lambda n: len(files[n]))[:3] if pair else workloads)  # small: fast
    case = Case(kind, "", dict(arch), SYSTEM if pair else r.choice(sorted(files)), wl if pair else None)
    case.files[wl] = files[wl]
    if kind in FILE_KINDS:
        victim = r.choice([SYSTEM, MACRO, wl]) if pair else case.target
        case.files[victim], detail, case.bad = mutate_file(r, files[victim], kind)
        case.detail = f"{victim}: {detail}"
        return case
    if kind == "special_file":
        case.target = case.detail = _special(case, r.choice(SPECIAL))
        return case
    if kind == "macro_ref":
        data = _load(files[SYSTEM])
        data["macro"] = case.detail = _special(case, r.choice(SPECIAL + [SYSTEM, wl, "../" + MACRO, ""]))
        case.target = SYSTEM
        case.files[SYSTEM] = _dump(data).encode()
        return case
    data = _load(files[wl])
    i = r.randint(0, len(data["layers"]) - 1)
    layer = data["layers"][i]
    if kind == "sparsity":
        sp = {"pattern": r.choice(["n:m", "unstructured", "row_block", "kernel_group", "crossbar", "channel", "x"]),
              "density": r.choice([0.5, 0.0, 1.0, 1e-300, -0.0, 1.0000001, math.nan, "0.5", None]),
              "n": r.choice([2, 1, 0, 4, 10**6, 10**9, -1, None]), "m": r.choice([4, 1, 10**6, 10**9, -1, None]),
              "seed": r.choice([0, -1, 2**32, 2**64, 10**400, 1.5, "x"])}
        if sp["density"] is None:
            del sp["density"]
        case.bad = sp.get("density", 0) != sp.get("density", 0)  # NaN
    else:
        sp = {"mask": "masks.npz"}
        if kind == "mask_ref":
            sp["mask"] = detail = _special(case, r.choice(SPECIAL))
        else:
            case.files["masks.npz"], detail, case.bad = npz_variant(r, layer["name"], _weight_shape(layer))
    layer["sparsity"] = sp
    case.detail = f"layers[{i}] {json.dumps(sp, default=str)[:80]}" + (f" {detail}" if kind != "sparsity" else "")
    case.files[wl] = _dump(data).encode()
    return case


# The other entry points' arguments (scripts/fuzz_specs.py --entries). A CLI case runs ``argv``
# ("{d}" is the case's directory); `cimco sweep` is checked as far as it goes before mapping.
CLI_KINDS = ["export", "sweep", "lrmp", "report", "diff"]
ZOO_OK = ["resnet20_cifar"]  # the smallest zoo model: an accepted export stays around a second
MODELS = ZOO_OK + ["no_such_model", "nosuchmodule_xyz:f", "math:pi", "os:getcwd", "json:loads", "a:b:c", ":",
                   "cimco:nothing", "torch.nn:ReLU", "torch.nn:Linear", "collections:OrderedDict", "x" * 5000]
EXPORT_OPTS = {  # flag: (good values, bad values); None leaves the flag out
    "--input-shape": ([None, "1,3,32,32"], ["2,3,32,32", "1,3,0,32", "1,3,-1,32", "1,3,1e9,32", "x", "", "1,3,32",
                                            "1,3,40000,40000", "1," * 200 + "1", "1,3,32,32,32,32"]),
    "--bits": ([None, "8,8,8", "4,4,8"], ["0,8,8", "8,8", "-1,8,8", "99,8,8", "a,b,c", "8,8,8,8", "1e3,8,8", ""]),
    "--name": ([None, "net"], ["", "../evil", "a/b", "x" * 300, ".", "-x", "con"]),
    "--example": ([None, "random", "zeros"], ["ones"]),
    "--seed": ([None, "0", "-1", "99999999999999999999"], ["x", "1.5", ""]),
}
LRMP_OPTS = {
    "--budget": ([None, "4"], ["0", "-3", "x", "2147483649", "1.5", "99999999999999999999"]),
    "--budget-factor": ([None, "2", "1e-300"], ["0", "-1", "nan", "inf", "x"]),
    "--objective": ([None, "throughput", "latency"], ["bogus", "energy"]),  # energy needs --min-throughput
    "--min-throughput": ([None, "1", "1e300"], ["0", "nan", "-5"]),
    "--max-replication": ([None, "1", "64"], ["0", "x", "2147483649"]),
}


def _options(r, opts: dict, argv: list[str]) -> tuple[str, bool]:
    """Add each flag of ``opts`` or not, with a good or a bad value: (detail, known bad)."""
    detail, bad = [], False
    for flag, (good, wrong) in opts.items():
        v = r.choice(r.choice([good, good, wrong]))
        if v is not None:
            argv += [flag, v]
            detail.append(f"{flag} {v[:30]}")
            bad |= v in wrong
    return " ".join(detail), bad


def _tiny_workload(files: dict[str, bytes]) -> tuple[str, bytes]:
    """The smallest bundled workload cut to its first two layers: accepted runs stay short."""
    name = min((n for n, t in files.items() if b"kind: workload" in t), key=lambda n: len(files[n]))
    data = _load(files[name])
    data["layers"] = data["layers"][:2]
    return "tiny.yaml", _dump(data).encode()


def _sensitivity(r, layers: list[str]) -> tuple[bytes | str, str, bool]:
    v = r.choice(["ok", "ok", "garbage", "no_header", "neg_loss", "nan", "bits0", "bits99", "unknown_layer",
                  "empty", "utf16", "fifo", "dir", "huge", "wide"])
    if v in ("fifo", "dir", "huge"):
        return v, v, True
    rows = {"ok": "{l},8,0.01", "neg_loss": "{l},8,-1", "nan": "{l},8,nan", "bits0": "{l},0,0.1",
            "bits99": "{l},99,0.1", "unknown_layer": "zz_{l},8,0.1", "wide": "{l},8,0.1," + "x," * 10_000}
    if v in rows:
        text = "layer,bits,loss\n" + "".join(rows[v].format(l=x) + "\n" for x in layers)
    elif v == "garbage":
        text = r.randbytes(r.randint(1, 500)).decode("latin-1")
    else:
        text = {"no_header": "".join(f"{x},8,0.1\n" for x in layers), "empty": "",
                "utf16": "layer,bits,loss\n"}[v]
    data = text.encode("utf-16" if v == "utf16" else "utf-8", "surrogateescape")
    return data, v, v not in ("ok", "unknown_layer")


def _report_json(r) -> tuple[bytes, str, bool]:
    """A mutated report.json, from a small report shaped like `cimco map`'s."""
    from test_report_scaling import synthetic_report

    data = synthetic_report(r.choice([1, 3, 300]))
    how = r.choice(["delete_key", "negative", "nan", "huge", "deep", "retype", "no_layers", "truncate",
                    "garbage", "empty", "invalid_utf8"])
    if how in ("truncate", "garbage", "empty", "invalid_utf8"):
        text, detail, bad = mutate_file(r, json.dumps(data).encode(), how)
        return text, f"{how} {detail}", bad
    if how == "no_layers":
        data["layers"] = []
        return json.dumps(data).encode(), how, True
    p, k = r.choice(_slots(data, []))
    p[k] = {"delete_key": None, "negative": -1e-6, "nan": math.nan, "huge": r.choice([1e308, 10**400, math.inf]),
            "deep": BOMB, "retype": r.choice(WEIRD)}[how]
    if how == "delete_key":
        del p[k]
    text = json.dumps(data)
    if how == "deep":
        d = r.choice([100, 1000, 100_000])
        text = text.replace(f'"{BOMB}"', "[" * d + "]" * d)
    return text.encode(), f"{how} {k}", how not in ("delete_key", "retype")  # those may hit unread keys


def _sweep(r, files: dict[str, bytes], wl: str) -> tuple[bytes, str, bool]:
    """A mutated sweep YAML: bad paths, huge grids, wrong types, or a mutation of the whole file."""
    data = {"kind": "sweep", "name": "fuzz", "system": SYSTEM, "workload": wl,
            "grid": {"macro.adc_bits": [4, 6]}, "points": [{"system.macros_per_core": 4}]}
    how = r.choice(["ok", "path", "huge_grid", "many_points", "wrong_type", "bad_key", "file"])
    detail, bad = how, True
    if how == "ok":
        bad = False
    elif how == "path":
        k = r.choice(["system", "workload"])
        data[k] = v = r.choice(SPECIAL + ["../../../etc/passwd", "/nonexistent/x.yaml", 5, None, [SYSTEM], ""])
        detail = f"{k}={v}"
    elif how == "huge_grid":
        n = r.randint(3, 9)
        data["grid"] = {f"macro.adc_bits{i}": list(range(100)) for i in range(n)}
        detail = f"100^{n} points"
    elif how == "many_points":  # within --max-points: every point is built and validated
        n = r.choice([2000, 10_000])
        data["grid"] = {"macro.adc_bits": list(range(-n // 2, n // 2))}
        detail = f"{n} points"
    elif how == "wrong_type":
        k = r.choice(["grid", "points", "name", "kind"])
        data[k] = v = r.choice(WEIRD + [[[1]], {"macro.adc_bits": 4}, [{"macro.adc_bits": None}]])
        detail = f"{k}={str(v)[:20]}"
    elif how == "bad_key":
        k = r.choice(["macro..x", "nope.x", "workload.layers.0.name", "", "system", "macro.adc_bits.x",
                      "workload.sparsity.density", "x" * 2000])
        data["grid"] = {k: [1, 2]}
        detail, bad = f"grid key {k[:30]}", k != "workload.sparsity.density"
    if how == "file":
        text, detail, bad = mutate_file(r, _dump(data).encode(), r.choice(FILE_KINDS))
        return text, f"file: {detail}", bad
    return _dump(data).encode(), detail, bad


def make_cli_case(r, files: dict[str, bytes], kinds: list[str] = CLI_KINDS) -> Case:
    """One input for `cimco export`, `sweep`, `lrmp`, `report` or `diff` (one of ``kinds``), every
    choice drawn from ``r``."""
    kind = r.choice(kinds)
    wl, wl_text = _tiny_workload(files)
    case = Case(kind, "", {}, "", None)
    if kind == "export":
        case.argv = ["export", "--model", r.choice(MODELS)] + (["--out", "{d}/out"] if r.randint(0, 9) else [])
        case.detail, case.bad = _options(r, EXPORT_OPTS, case.argv)
        case.bad |= case.argv[2] not in ZOO_OK or "--out" not in case.argv
        case.detail = f"--model {case.argv[2][:30]} {case.detail}"
    elif kind == "sweep":
        case.files = {SYSTEM: files[SYSTEM], MACRO: files[MACRO], wl: wl_text}
        case.files["sweep.yaml"], case.detail, case.bad = _sweep(r, files, wl)
        case.argv = ["sweep", "{d}/sweep.yaml", "--out", "{d}/out"]
    elif kind == "lrmp":
        case.files = {SYSTEM: files[SYSTEM], MACRO: files[MACRO], wl: wl_text}
        case.argv = ["lrmp", "--system", "{d}/" + SYSTEM, "--workload", "{d}/" + wl, "--out", "{d}/out"]
        case.detail, case.bad = _options(r, LRMP_OPTS, case.argv)
        if r.randint(0, 1):
            names = [x["name"] for x in _load(wl_text)["layers"]]
            case.files["sens.csv"], v, bad = _sensitivity(r, names)
            case.argv += ["--sensitivity", "{d}/" + ("sens.csv" if v not in ("fifo", "dir", "huge") else v)]
            if v in ("fifo", "dir", "huge"):
                case.files[v] = v
            case.detail, case.bad = f"{case.detail} --sensitivity {v}", case.bad or bad
        case.bad |= "energy" in case.argv and "--min-throughput" not in case.argv
    elif kind == "report":
        case.files["report.json"], case.detail, case.bad = _report_json(r)
        case.argv = ["report", "{d}"]
    else:  # diff: two report dirs, each clean or mutated (or missing), an --out good or not
        from test_report_scaling import synthetic_report

        details = []
        for side in ("a", "b"):
            how = r.choice(["clean", "clean", "mutated", "missing"])
            if how == "clean":
                case.files[f"{side}/report.json"] = json.dumps(synthetic_report(r.choice([1, 3, 300]))).encode()
            elif how == "mutated":
                case.files[f"{side}/report.json"], detail, bad = _report_json(r)
                how, case.bad = f"mutated {detail}", case.bad or bad
            else:
                case.bad = True
            details.append(f"{side}: {how}")
        case.argv = ["diff", "{d}/a", "{d}/b"]
        out = r.choice([None, "{d}/cmp", "/proc/cimco", "{d}/a/report.json"])
        if out is not None:
            case.argv += ["--out", out]
            details.append(f"--out {out}")
            case.bad |= out != "{d}/cmp"
        case.detail = " ".join(details)
    case.target = case.argv[0]
    return case
