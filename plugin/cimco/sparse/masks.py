"""Weight masks of a workload's sparse layers: read from ``.npz`` files or generated."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cimco.errors import Problem, SpecError
from cimco.sparse.layout import Geometry, weight_shape
from cimco.sparse.patterns import generate
from cimco.spec.system import SystemSpec
from cimco.spec.workload import WorkloadSpec


def resolve(system: SystemSpec, workload: WorkloadSpec, workload_path: str | Path) -> dict[str, np.ndarray]:
    """Mask of every layer with ``sparsity``; all problems raised together."""
    file = str(workload_path)
    base = Path(workload_path).parent
    masks: dict[str, np.ndarray] = {}
    problems: list[Problem] = []
    archives: dict[str, dict] = {}
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
                with np.load(npz) as z:
                    archives[sp.mask] = {k: z[k] for k in z.files}
            except (OSError, ValueError) as e:
                problems.append(Problem(file, f"{path}.mask", f"layer {layer.name!r}: cannot read "
                                        f"mask file {npz}: {getattr(e, 'strerror', None) or e}"))
                archives[sp.mask] = {}
                continue
        arrays = archives[sp.mask]
        if not arrays:
            continue
        if layer.name not in arrays:
            problems.append(Problem(file, f"{path}.mask", f"layer {layer.name!r}: {npz} has no array "
                                    f"named {layer.name!r} (has {sorted(arrays)[:5]})"))
            continue
        mask = arrays[layer.name]
        want = weight_shape(layer)
        if mask.shape != want:
            problems.append(Problem(file, f"{path}.mask", f"layer {layer.name!r}: mask shape "
                                    f"{tuple(mask.shape)} does not match the weight shape {want}"))
            continue
        masks[layer.name] = mask != 0
    if problems:
        raise SpecError(problems)
    return masks
