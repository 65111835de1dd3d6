"""Weight masks of a workload's sparse layers: read from ``.npz`` files or generated."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from cimco.errors import Problem, SpecError
from cimco.geometry import MacroGeometry
from cimco.sparse.layout import weight_shape
from cimco.sparse.patterns import generate
from cimco.spec._base import clip, short
from cimco.spec.load import read_regular
from cimco.spec.system import SystemSpec
from cimco.spec.workload import WorkloadSpec

MAX_MASK_FILE_BYTES = 2**30


class MaskArchive:
    """An ``.npz`` of masks, read one member at a time: a member's ``.npy`` header (shape and
    dtype) is checked before its data is read, so a small file claiming a huge array (or a
    zip bomb) costs nothing. No pickles. Anything that is not such an archive is a SpecError."""

    def __init__(self, path: Path):
        self.path = path
        data = read_regular(path, MAX_MASK_FILE_BYTES, "mask file")
        if data.startswith(b"\x93NUMPY"):
            raise SpecError([Problem(clip(str(path)), "", "cannot read mask file: a single .npy array, "
                                     "expected an .npz of arrays named after the layers")])
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data))
            self.names = {n.removesuffix(".npy") for n in self.zip.namelist()}
        except Exception as e:  # zipfile raises several types on a file that is not an archive
            raise self.unreadable(e) from None

    def unreadable(self, e: Exception, member: str = "") -> SpecError:
        where = f"[{member!r}]" if member else ""
        return SpecError([Problem(clip(str(self.path)) + where, "", f"cannot read mask file: {type(e).__name__}: "
                                  f"{clip(str(e))} (expected an .npz of arrays, as numpy.savez writes)")])

    def _open(self, name: str):
        return self.zip.open(name + ".npy" if name + ".npy" in self.zip.namelist() else name)

    def header(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        try:
            with self._open(name) as f:
                version = np.lib.format.read_magic(f)
                shape, _, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0(f))
        except Exception as e:  # not an .npy member: bad magic, header or compression
            raise self.unreadable(e, name) from None
        return tuple(shape), dtype

    def array(self, name: str) -> np.ndarray:
        try:
            with self._open(name) as f:
                return np.lib.format.read_array(f, allow_pickle=False)
        except Exception as e:  # truncated or damaged data
            raise self.unreadable(e, name) from None


def _dtype_problem(dtype: np.dtype) -> str | None:
    if dtype.kind not in "biuf" or dtype.fields is not None:
        return f"expected a bool, integer or float array, got dtype {clip(str(dtype), 80)}"
    return None


def resolve(system: SystemSpec, workload: WorkloadSpec, workload_path: str | Path) -> dict[str, np.ndarray]:
    """Mask of every layer with ``sparsity``; all problems raised together."""
    file = str(workload_path)
    base = Path(workload_path).parent
    masks: dict[str, np.ndarray] = {}
    problems: list[Problem] = []
    archives: dict[str, MaskArchive | None] = {}
    for i, layer in enumerate(workload.layers):
        sp = layer.sparsity
        if sp is None:
            continue
        path = f"layers[{i}].sparsity"
        if system.index_memory is None:
            problems.append(Problem(file, path, f"layer {layer.name!r} is pruned but system "
                                    f"{system.name!r} has no index_memory for its index codes"))
        if sp.pattern is not None:
            masks[layer.name] = generate(layer, MacroGeometry.of_system(system, workload.layer_bits(layer)), sp.pattern,
                                         sp.density if sp.density is not None else (sp.n or 1) / (sp.m or 1),
                                         sp.seed, n=sp.n, m=sp.m)
            continue
        npz = base / sp.mask
        where = f"{path}.mask"
        try:
            if sp.mask not in archives:
                archives[sp.mask] = None
                archives[sp.mask] = MaskArchive(npz)
            archive = archives[sp.mask]
            if archive is None:  # unreadable: reported once
                continue
            if layer.name not in archive.names:
                problems.append(Problem(file, where, f"layer {layer.name!r}: {clip(str(npz))} has no array "
                                        f"named {layer.name!r} (has {short(sorted(archive.names)[:5], 200)})"))
                continue
            shape, dtype = archive.header(layer.name)
            want = weight_shape(layer)
            bad = _dtype_problem(dtype) or (None if shape == want else f"mask shape {shape} does not match "
                                            f"the weight shape {want}")
            mask = None if bad else archive.array(layer.name)
            if mask is not None and mask.dtype.kind == "f" and not np.isfinite(mask).all():
                bad = "contains NaN or infinite values (neither kept nor pruned)"
            if bad:
                problems.append(Problem(file, where, f"layer {layer.name!r}: {clip(str(npz))}[{layer.name!r}]: {bad}"))
                continue
            masks[layer.name] = mask != 0
        except SpecError as e:
            problems += [Problem(file, where, f"layer {layer.name!r}: {p.file}: {p.message}") for p in e.problems]
    if problems:
        raise SpecError(problems)
    return masks
