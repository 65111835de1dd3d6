"""Weight masks of a workload's sparse layers: read from ``.npz`` files or generated."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from cimco.errors import Problem, SpecError
from cimco.sparse.layout import Geometry, weight_shape
from cimco.sparse.patterns import generate
from cimco.spec._base import clip, short
from cimco.spec.load import read_regular
from cimco.spec.system import SystemSpec
from cimco.spec.workload import WorkloadSpec

MAX_MASK_FILE_BYTES = 2**30


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file (no pickles); a file that is not one is a SpecError."""
    data = read_regular(path, MAX_MASK_FILE_BYTES, "mask file")
    try:
        z = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as e:  # numpy raises many types on a file that is not an archive
        raise _unreadable(path, e) from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise SpecError([Problem(clip(str(path)), "", "cannot read mask file: a single .npy array, "
                                 "expected an .npz of arrays named after the layers")])
    with z:
        try:
            return {k: z[k] for k in z.files}
        except Exception as e:  # a damaged member: zip, zlib or npy header errors
            raise _unreadable(path, e) from None


def _unreadable(path: Path, e: Exception) -> SpecError:
    return SpecError([Problem(clip(str(path)), "", f"cannot read mask file: {type(e).__name__}: "
                              f"{clip(str(e))} (expected an .npz of arrays, as numpy.savez writes)")])


def _mask_problem(mask: np.ndarray) -> str | None:
    """Why an array cannot be a mask (non-zero = kept), or None."""
    if not isinstance(mask, np.ndarray):  # numpy hands back the raw bytes of a non-array member
        return "not a numpy array (a damaged or foreign archive member)"
    if mask.dtype.kind not in "biuf":
        return f"expected a bool, integer or float array, got dtype {mask.dtype}"
    if mask.dtype.kind == "f" and not np.isfinite(mask).all():
        return "contains NaN or infinite values (neither kept nor pruned)"
    return None


def resolve(system: SystemSpec, workload: WorkloadSpec, workload_path: str | Path) -> dict[str, np.ndarray]:
    """Mask of every layer with ``sparsity``; all problems raised together."""
    file = str(workload_path)
    base = Path(workload_path).parent
    masks: dict[str, np.ndarray] = {}
    problems: list[Problem] = []
    archives: dict[str, dict | None] = {}
    for i, layer in enumerate(workload.layers):
        sp = layer.sparsity
        if sp is None:
            continue
        path = f"layers[{i}].sparsity"
        if system.index_memory is None:
            problems.append(Problem(file, path, f"layer {layer.name!r} is pruned but system "
                                    f"{system.name!r} has no index_memory for its index codes"))
        if sp.pattern is not None:
            masks[layer.name] = generate(layer, Geometry.of_system(system, workload.layer_bits(layer)), sp.pattern,
                                         sp.density if sp.density is not None else (sp.n or 1) / (sp.m or 1),
                                         sp.seed, n=sp.n, m=sp.m)
            continue
        npz = base / sp.mask
        if sp.mask not in archives:
            try:
                archives[sp.mask] = read_npz(npz)
            except SpecError as e:
                problems += [Problem(file, f"{path}.mask", f"layer {layer.name!r}: {p.file}: {p.message}")
                             for p in e.problems]
                archives[sp.mask] = None
                continue
        arrays = archives[sp.mask]
        if arrays is None:  # unreadable: reported once
            continue
        if layer.name not in arrays:
            problems.append(Problem(file, f"{path}.mask", f"layer {layer.name!r}: {npz} has no array "
                                    f"named {layer.name!r} (has {short(sorted(arrays)[:5], 200)})"))
            continue
        mask = arrays[layer.name]
        bad = _mask_problem(mask)
        if bad:
            problems.append(Problem(file, f"{path}.mask", f"layer {layer.name!r}: {npz}[{layer.name!r}]: {bad}"))
            continue
        want = weight_shape(layer)
        if mask.shape != want:
            problems.append(Problem(file, f"{path}.mask", f"layer {layer.name!r}: mask shape "
                                    f"{tuple(mask.shape)} does not match the weight shape {want}"))
            continue
        masks[layer.name] = mask != 0
    if problems:
        raise SpecError(problems)
    return masks
