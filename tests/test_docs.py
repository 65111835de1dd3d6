"""Every example in README.md and docs/*.md runs (issue 18, item 7).

The fenced blocks of each page are read in order and, by their tag:

- ``bash`` / ``sh``: every line is a ``cimco`` command (anything else fails the test: put it in a
  ``text`` block). Each is shlex-split and run in-process through :func:`cimco.cli.main` and must
  exit 0. Globs are expanded as a shell would. ``--out`` and the other paths stay relative to the
  working directory, a scratch copy of the repository root under pytest's tmp_path (see below), so
  nothing is written into the working tree; an absolute ``--out``/``--cache-dir`` is moved under it.
  ``cimco map`` and ``cimco sweep`` get ``--cache-dir`` pointing to one mapping cache shared by the
  module, so a layer shape that several examples map is mapped once.
- ``yaml`` with ``kind:``: written to a file and validated (``cimco specs validate``, exit 0; a
  ``kind: sweep`` file, which ``specs validate`` does not take, by :func:`cimco.sweeps.load`, the
  check ``cimco sweep`` starts with). When the text before it says to save it ("Save this as
  `my_macro.yaml`", "saved as `sweeps/example.yaml`") it is written under that name, so the
  commands after it run against it, as a reader's would. A ``yaml`` block without ``kind:`` must be
  an excerpt whose comment lines name bundled files ("# analog (si_jssc_2021.yaml)"); every value
  it shows must equal that file's.
- ``python``: executed with ``exec`` in a fresh namespace, cwd the scratch root.
- ``text`` / ``console`` and untagged blocks are not run: outputs, diagrams, and commands that are
  not meant to run in a test: ``make demo`` / ``make test`` / ``make bench`` (they install the
  environment, run the whole suite, or map ImageNet networks and fuzz for tens of minutes),
  ``cimco doctor --repair`` (rebuilds binaries inside the installed wheels), and the classic
  ``timeloop-mapper`` binary itself (optional, not bundled). An untagged block must not hold a
  ``cimco`` command.

The scratch root has ``arch_specs/`` and ``workloads/`` linked from the repository, so the bundled
paths of the examples resolve as from the repository root. Its shared mapping cache is
``out/r20/cache``, the cache the quick start's first ``cimco map --out out/r20`` makes by default,
which the Python examples name as their ``cache_dir``. Pages run in order: README.md first (its
quick start writes ``my_macro.yaml``, ``my_system.yaml``, ``my_net.yaml`` and ``my_sweep.yaml``,
which some docs pages use), then docs/*.md in the README's table of contents order.

``cimco map --backend timeloop`` lines are run by their own test, and skipped (naming the binary)
where no ``timeloop-mapper`` is found; they are the only examples that may be skipped.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from cimco import sweeps
from cimco.cli import main, parser
from cimco.errors import SpecError

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
LINKED = ("arch_specs", "workloads")  # linked into the scratch root
SHARED_CACHE = "out/r20/cache"
RUN_TAGS = {"bash", "sh", "yaml", "python"}
QUIET_TAGS = {"text", "console", ""}

PIPELINE = """\
specs (YAML) ─► validate ─► map each distinct layer through a backend (cache, dedup, workers, limits)
            ─► sparsity (block occupancy of the masks) ─► execution (residency, weights, batch, mode)
            ─► report (report.json, layers.csv, report.md, report.html, ERT.yaml, ART.yaml)
"""
BACKENDS = """\
| backend | `--backend` | what maps a layer | notes |
|---|---|---|---|
| cimco | `cimco` (default) | cimco's own search of the CIM mapspace (imperfect factors included); t\
he best mapping's counts, energies and latencies in closed form, each equal to AccelForge's model's \
for that mapping (tested entry by entry; 1,870 layer/system pairs checked); with a memory in each co\
re, the plans that cover every rank exactly, the cores below or above the loops (510 pairs checked) \
| no AccelForge call at r\
un time: ResNet-50 in 4.5 s from a cold start (0.05x plain AccelForge); within 1% of FFM or a lower \
energy-delay product on 1,848 of 1,870 layer/system pairs, none worse (21 others: FFM's mapping uses\
 more macros than a core has; one: FFM's 1.1% lower energy is the model counting fewer readouts than\
 any mapping has), clearly better on small buffers (ResNet-18 `conv1`, 4 macros, 16 KB: 0.36x FFM's \
energy, 0.63x its latency) ([models.md](docs/models.md#the-cimco-backend), [benchmarks.md](docs/benc\
hmarks.md#the-cimco-backend-against-ffm)) |
| AccelForge | `accelforge` | AccelForge's FFM mapper over its whole mapspace, evaluated by its mode\
l with cimco's hwcomponents models | the reference for every number; may use more macros than a core\
 has (imperfect spatial loops counted at their mean) |
| Classic Timeloop | `timeloop` | `timeloop-mapper` (v3.0.x, optional binary: `--timeloop-bin`, `$CI\
MCO_TIMELOOP_BIN` or PATH) on the files `cimco timeloop export` writes: the cimco backend's best mapping th\
at Timeloop can express, fixed in the constraints | Timeloop's own counts of that mapping, through the sa\
me sparsity, execution and report |
"""
ENTRY_POINTS = ("Every entry point (`cimco map`, `cimco sweep`, `cimco.map`, `cimco.sweep`, the Dask executor) "
                "calls the one function `cimco.pipeline.run`, and `report.json` records the `backend`.")
QUICK_START = ("**1. Set up", "**2. Map a bundled workload", "**3. Read the report", "**4. Write your own macro "
               "and system", "**5. Sweep", "**6. Export a torch model", "## How the numbers are made",
               "## Documentation")
README_MAX_LINES = 180  # the first screen is the whole README; keep it short


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    tag: str
    text: str
    save_as: str | None  # the file name the text before it gives it

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


FENCE = re.compile(r"^(`{3,})\s*([\w+-]*)\s*$")
SAVE = re.compile(r"\b[Ss]ave")
SAVE_NAME = re.compile(r"\bas `([^`\s]+\.ya?ml)`")


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a page. A YAML block's file name comes from the paragraph before it
    ("Save ... as `a.yaml`, and ... as `b.yaml`:" names this block and the next)."""
    out: list[Block] = []
    lines = page.read_text().splitlines()
    i, prose, names = 0, [], []
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            prose.append(lines[i])
            i += 1
            continue
        para = "\n".join(prose).strip().split("\n\n")[-1]
        if para:  # a new paragraph since the last block: its names replace any left over
            names = SAVE_NAME.findall(para) if SAVE.search(para) else []
        start, fence, tag = i + 1, m.group(1), m.group(2).lower()
        j = i + 1
        while j < len(lines) and lines[j].strip() != fence:
            j += 1
        assert j < len(lines), f"{page.name}:{start}: unclosed code fence"
        name = names.pop(0) if tag == "yaml" and names else None
        out.append(Block(page, start, tag, "\n".join(lines[i + 1:j]) + "\n", name))
        i, prose = j + 1, []
    return out


def docs_pages() -> list[Path]:
    """docs/*.md in the order of the README's table of contents, then any it does not link."""
    toc = README.read_text().split("## Documentation", 1)[-1]
    linked = [ROOT / p for p in re.findall(r"\]\((docs/[\w.-]+\.md)\)", toc)]
    order = list(dict.fromkeys(p for p in linked if p.exists()))
    return order + sorted(set((ROOT / "docs").glob("*.md")) - set(order))


def all_blocks() -> list[Block]:
    return [b for page in [README, *docs_pages()] for b in blocks(page)]


def commands(block: Block) -> list[tuple[int, str]]:
    """(line, command) of a bash block: backslash continuations joined, comments and blanks dropped."""
    out, pending, first = [], "", 0
    for k, raw in enumerate(block.text.splitlines()):
        if not pending:
            first = block.line + 1 + k
        pending += raw.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        text, pending = pending.strip(), ""
        if text and not text.startswith("#"):
            out.append((first, text))
    return out


def is_timeloop_map(argv: list[str]) -> bool:
    """``cimco map --backend timeloop ...`` (as argv without ``cimco``)."""
    pairs = zip(argv, argv[1:])
    return argv[:1] == ["map"] and ("--backend=timeloop" in argv or ("--backend", "timeloop") in pairs)


# --- the scratch root ----------------------------------------------------------------------------


def make_root(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        (path / name).symlink_to(ROOT / name, target_is_directory=True)
    return path


def inside(value: str) -> str:
    """A path argument kept under the scratch root: a relative one already is (the root is the
    cwd); an absolute one is moved under it."""
    p = Path(value)
    if p.is_absolute():
        p = Path(*p.parts[1:])
    assert ".." not in p.parts, f"{value}: an example's output must stay under the working directory"
    return str(p)


def argv_of(command: str, root: Path) -> list[str]:
    """``cimco ...`` as the argv of :func:`cimco.cli.main`, with globs expanded (relative to
    root, as a shell would), output paths kept under root, and the shared mapping cache."""
    words = shlex.split(command, comments=True)
    assert words[0] == "cimco", command
    argv: list[str] = []
    for w in words[1:]:
        hits = sorted(glob.glob(w, root_dir=root)) if any(c in w for c in "*?[") else []
        argv += hits or [w]
    for flag in ("--out", "--cache-dir"):
        if flag in argv[:-1]:
            k = argv.index(flag) + 1
            argv[k] = inside(argv[k])
    if argv[:1] in (["map"], ["sweep"]) and "--cache-dir" not in argv and "--no-cache" not in argv \
            and "--help" not in argv:
        argv += ["--cache-dir", SHARED_CACHE]
    return argv


def run_cli(argv: list[str]) -> tuple[int, str]:
    """Exit code and output of one command, in-process."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse: --help, or a usage error
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    return code, buf.getvalue()


def excerpt_problems(block: Block) -> list[str]:
    """An excerpt's values that differ from the bundled files its comment lines name."""
    sections: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        m = re.match(r"^#.*\(([\w.-]+\.ya?ml)\)\s*$", line)
        if m:
            sections.append((m.group(1), []))
        elif sections:
            sections[-1][1].append(line)
    if not sections:
        return [f"{block.where}: a yaml block with no `kind:` names no bundled file; tag it text or make it a spec"]
    bad = []
    for name, body in sections:
        path = ROOT / "arch_specs" / name
        if not path.exists():
            bad.append(f"{block.where}: {name} is not in arch_specs/")
            continue
        shown, real = yaml.safe_load("\n".join(body)), yaml.safe_load(path.read_text())
        for key, value in shown.items():
            want = real.get(key)
            if isinstance(value, dict) and isinstance(want, dict) and "value" in value:
                value, want = value["value"], want.get("value")
            if value != want:
                bad.append(f"{block.where}: {name}: {key} is {want!r} there, {value!r} here")
    return bad


def check_yaml(block: Block, root: Path) -> tuple[Path | None, list[str]]:
    """Write a YAML block where it belongs; the file if it is a spec or a sweep, else the
    problems of an excerpt."""
    data = yaml.safe_load(block.text)
    if not (isinstance(data, dict) and "kind" in data):
        return None, excerpt_problems(block)
    rel = block.save_as or f"examples/{block.page.stem}-{block.line}.yaml"
    path = root / inside(rel)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(block.text)
    return path, []


def validate(path: Path) -> str | None:
    """None if the spec (or sweep) file is valid, else why not."""
    if yaml.safe_load(path.read_text()).get("kind") == "sweep":
        try:
            sweeps.load(path)
        except SpecError as e:
            return str(e)
        return None
    code, out = run_cli(["specs", "validate", str(path)])
    return None if code == 0 else f"cimco specs validate: exit {code}\n{out[-1500:]}"


# --- static checks (fast) ------------------------------------------------------------------------


def test_readme_opens_with_setup_then_the_quick_start_in_order() -> None:
    text = README.read_text()
    first_block = blocks(README)[0]
    assert first_block.line < 5 and "make demo" in first_block.text and "make test" in first_block.text
    at = [text.find(s) for s in QUICK_START]
    assert -1 not in at and at == sorted(at), dict(zip(QUICK_START, at))
    assert f"```\n{PIPELINE}```\n" in text
    assert BACKENDS in text
    assert ENTRY_POINTS in " ".join(text.split())
    assert len(text.splitlines()) <= README_MAX_LINES


# dicts keyed by part, part.action or package, not by report fields; the loops as data
OPEN_KEYS = ("energy_by_component", "latency_by_component_s", "action_counts", "memory_budget_bits", "engine",
             "mapping_loops", "placement", "levels")


def report_keys(x, out: set[str]) -> set[str]:
    """Every field name of a report.json, nested ones included (the contents of OPEN_KEYS not)."""
    if isinstance(x, list):
        for v in x:
            report_keys(v, out)
    elif isinstance(x, dict):
        for k, v in x.items():
            out.add(k)
            if k not in OPEN_KEYS:
                report_keys(v, out)
    return out


def test_readme_lists_every_report_key_with_its_unit(tmp_path: Path) -> None:
    """The quick start's key table names every field of a real report.json (one with sparsity and
    a warning), and nothing that is not one; each name once."""
    import cimco

    (tmp_path / "w.yaml").write_text(
        "kind: workload\nname: keys\nsource: tests/test_docs.py\nbits: {input: 8, weight: 8, output: 8}\n"
        "layers:\n  - {name: a, type: conv, in_channels: 16, out_channels: 32, input_hw: [8, 8], kernel: 3, "
        "padding: 1, sparsity: {pattern: row_block, density: 0.5}}\n"
        "  - {name: b, type: linear, in_channels: 64, out_channels: 10}\n")  # b's inputs match no producer
    cimco.map(ROOT / "arch_specs/mars_system.yaml", tmp_path / "w.yaml", out=tmp_path / "out")
    report = json.loads((tmp_path / "out/report.json").read_text())
    assert report["warnings"] and report["layers"][0]["sparsity"]
    section = README.read_text().split("**3. Read the report", 1)[1].split("**4. ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line][1:]
    units = [row.split("|")[1].strip() for row in rows]
    listed = [k for row in rows for k in re.findall(r"`([a-z_0-9]+)`", row.split("|")[2])]
    assert all(units), rows
    dup = {k for k in listed if listed.count(k) > 1}
    assert not dup, f"listed twice: {sorted(dup)}"
    structure = {"totals", "layers", "breakdown", "ceilings", "sparsity"}  # named in the sentence above the table
    assert all(f"`{k}`" in section.split("| unit", 1)[0] for k in structure)
    keys = report_keys(report, set())
    engine_packages = set(report["engine"])
    missing = keys - structure - set(listed)
    stale = set(listed) - keys - engine_packages
    assert not missing and not stale, f"report.json keys missing from README: {sorted(missing)}; " \
                                      f"listed but not in report.json: {sorted(stale)}"


def test_readme_links_every_docs_page() -> None:
    toc = README.read_text().split("## Documentation", 1)[1]
    linked = set(re.findall(r"\]\((docs/[\w.-]+\.md)\)", toc))
    pages = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    assert pages and linked == pages


def slug(heading: str) -> str:
    """A heading's anchor as code hosts make it: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^(`{3,}).*?^\1\s*$", "", page.read_text(), flags=re.M | re.S)  # headings only outside code
    return {slug(m) for m in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def test_links_resolve() -> None:
    bad = []
    for page in [README, *docs_pages()]:
        text = re.sub(r"^(`{3,}).*?^\1\s*$", "", page.read_text(), flags=re.M | re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            dest = (page.parent / file).resolve() if file else page
            if not dest.exists():
                bad.append(f"{page.name}: {target}: no such file")
            elif anchor and anchor not in anchors(dest):
                bad.append(f"{page.name}: {target}: no such heading in {dest.name}")
    assert not bad, "\n".join(bad)


def test_every_block_is_tagged_and_runnable() -> None:
    found = {tag: 0 for tag in ("bash", "yaml", "python")}
    bad = []
    for b in all_blocks():
        if b.tag not in RUN_TAGS | QUIET_TAGS:
            bad.append(f"{b.where}: unknown tag {b.tag!r}")
        elif b.tag in ("bash", "sh"):
            for line, cmd in commands(b):
                if not cmd.startswith("cimco "):
                    bad.append(f"{b.page.name}:{line}: `{cmd}` is not a cimco command; put it in a text block")
            found["bash"] += 1
        elif b.tag == "" and any(ln.strip().startswith("cimco ") for ln in b.text.splitlines()):
            bad.append(f"{b.where}: an untagged block holds a cimco command; tag it bash (run) or text")
        elif b.tag in found:
            found[b.tag] += 1
    assert not bad, "\n".join(bad)
    assert min(found.values()) > 0, found


def test_yaml_blocks_are_valid_specs(tmp_path: Path) -> None:
    """Every YAML block, validated on its own (the walk below validates them again, in order)."""
    root = make_root(tmp_path / "root")
    files, bad = [], []
    for b in (b for b in all_blocks() if b.tag == "yaml"):
        path, problems = check_yaml(b, root)
        bad += problems
        if path is not None:
            files.append((b, path))
    for b, path in files:  # all written first: a system names its macro file
        why = validate(path)
        if why:
            bad.append(f"{b.where} ({path.name}): {why}")
    assert files and not bad, "\n".join(bad)


def test_every_flag_is_documented() -> None:
    text = (ROOT / "docs/commands.md").read_text()
    missing = []

    def walk(p, prefix: str) -> None:
        for action in p._actions:
            if hasattr(action, "choices") and isinstance(action.choices, dict):  # subcommands
                for name, sub in action.choices.items():
                    if f"cimco {prefix}{name}".strip() not in text:
                        missing.append(f"cimco {prefix}{name}")
                    walk(sub, f"{prefix}{name} ")
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help" and f"`{flag}`" not in text:
                    missing.append(f"cimco {prefix}{flag}")

    walk(parser(), "")
    assert not missing, f"not in docs/commands.md: {missing}"


# --- the examples, run (slow) ------------------------------------------------------------------


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return make_root(tmp_path_factory.mktemp("docs") / "root")


@pytest.mark.slow
def test_examples_run_in_page_order(scratch: Path, monkeypatch) -> None:
    """README then docs/*.md, every block in order: commands exit 0, specs validate, Python runs."""
    monkeypatch.chdir(scratch)
    monkeypatch.setenv("MPLCONFIGDIR", str(scratch / ".matplotlib"))
    ran = {"command": 0, "yaml": 0, "python": 0}
    slow: list[tuple[float, str]] = []
    for b in all_blocks():
        t0 = time.monotonic()
        if b.tag in ("bash", "sh"):
            for line, cmd in commands(b):
                argv = argv_of(cmd, scratch)
                if is_timeloop_map(argv):
                    continue  # test_timeloop_backend_examples
                code, out = run_cli(argv)
                if code != 0:
                    pytest.fail(f"{b.page.name}:{line}: `{cmd}` exited {code} (argv {argv}):\n{out[-3000:]}",
                                pytrace=False)
                ran["command"] += 1
        elif b.tag == "yaml":
            path, problems = check_yaml(b, scratch)
            assert not problems, "\n".join(problems)
            if path is not None:
                why = validate(path)
                assert why is None, f"{b.where} ({path.name}): {why}"
                ran["yaml"] += 1
        elif b.tag == "python":
            code = compile(b.text, b.where, "exec")
            with contextlib.redirect_stdout(io.StringIO()):
                exec(code, {"__name__": "__docs__"})
            ran["python"] += 1
        slow.append((round(time.monotonic() - t0, 1), b.where))
    print("ran", ran, "slowest blocks:", sorted(slow, reverse=True)[:5])
    assert min(ran.values()) > 0, ran


def timeloop_lines() -> list[tuple[str, str]]:
    return [(f"{b.page.name}:{line}", cmd) for b in all_blocks() if b.tag in ("bash", "sh")
            for line, cmd in commands(b) if is_timeloop_map(shlex.split(cmd, comments=True)[1:])]


@pytest.mark.slow
@pytest.mark.parametrize(("where", "cmd"), timeloop_lines() or [("none", "")])
def test_timeloop_backend_examples(where: str, cmd: str, tmp_path: Path, monkeypatch) -> None:
    """``cimco map --backend timeloop`` lines, where a timeloop-mapper binary is found."""
    from cimco.timeloop.runner import find_binary

    if not cmd:
        return
    root = make_root(tmp_path / "root")
    argv = argv_of(cmd, root)
    given = argv[argv.index("--timeloop-bin") + 1] if "--timeloop-bin" in argv else None
    try:
        find_binary(given)
    except SpecError:
        pytest.skip(f"{where}: no timeloop-mapper binary (--timeloop-bin, $CIMCO_TIMELOOP_BIN or PATH): "
                    f"not run: {cmd}")
    monkeypatch.chdir(root)
    monkeypatch.setenv("MPLCONFIGDIR", str(root / ".matplotlib"))
    code, out = run_cli(argv)
    assert code == 0, f"{where}: `{cmd}` exited {code}:\n{out[-3000:]}"
    assert os.path.exists(root / inside(argv[argv.index("--out") + 1]) / "report.json")
