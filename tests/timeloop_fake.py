"""A stand-in for classic Timeloop's timeloop-mapper, for tests where no binary is installed."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures/timeloop"
REAL = FIXTURES / "real/008_layer2.0.conv2"  # a real timeloop-mapper run (v3.0.3) on cimco's export


def fake_mapper(tmp_path: Path) -> Path:
    """A stand-in for timeloop-mapper: checks it got the six files, logs its run, and writes a
    real run's stats (ResNet-20 layer2.0.conv2 on the MARS-like system) whatever the layer."""
    script = tmp_path / "timeloop-mapper"
    script.write_text(f"""#!{sys.executable}
import pathlib, shutil, sys, yaml
assert sys.argv[1:] == ["arch.yaml", "problem.yaml", "mapper.yaml", "constraints.yaml", "ERT.yaml", "ART.yaml"]
for f in sys.argv[1:]:
    yaml.safe_load(open(f))
with open({str(tmp_path / "calls.log")!r}, "a") as log:
    log.write(pathlib.Path.cwd().name + "\\n")
for f in ("timeloop-mapper.stats.txt", "timeloop-mapper.map.txt"):
    shutil.copy({str(REAL)!r} + "/" + f, f)
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script
