"""Render an HTML file in headless Chromium and write a PNG screenshot of it.

    python scripts/html_screenshot.py out/r20/report.html shot.png [--width 1280 --height 3000]

Chromium runs offline (no sandbox, GPU, sync, updates or background networking) with a
throwaway profile. Exit 2 if chromium is not installed (`make setup` installs it as root).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def screenshot(html: Path, png: Path, width: int = 1280, height: int = 3000, timeout_s: float = 120) -> None:
    exe = chromium()
    if exe is None:
        raise FileNotFoundError("chromium not found (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="cimco-chromium-") as profile:
        subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                        f"--screenshot={Path(png).absolute()}", Path(html).absolute().as_uri()],
                       check=True, capture_output=True, timeout=timeout_s)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("html")
    p.add_argument("png")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=3000)
    a = p.parse_args()
    try:
        screenshot(Path(a.html), Path(a.png), a.width, a.height)
    except FileNotFoundError as e:
        print(e, file=sys.stderr)
        return 2
    print(f"wrote {a.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
