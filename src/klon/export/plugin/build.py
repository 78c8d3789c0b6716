"""`klon export plugin OUTDIR`: the exported C pedals built into plugins with DPF.

The folder it makes holds the bundles (`klon_stereo.lv2`, `klon_stereo.vst3`, `klon_stereo.clap`,
the JACK program `klon_stereo`, and the same for `klon_mono` and `klon_mono_stereo`) and, in
src/, everything they were built from: the C pedals of `klon export c` (neural/: the shipped
'circuit' set and the circuit gain stage; neural-48k/: 'circuit-48k'), the plugin's C and C++
sources (sources/ here) and a Makefile, so `make -C OUTDIR/src` builds them again after an edit.

The whole folder is made aside and renamed into place when every format built: a failed build
leaves nothing behind. `install` copies the bundles where hosts look for them.
"""
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from klon.core.errors import KlonError
from klon.export.c99.neural_c import render_library
from klon.export.plugin import FORMATS, LAYOUTS
from klon.neural.gain_stage import DEFAULT_MODELS, DEFAULT_SET

SOURCES = Path(__file__).with_name("sources")
# the model sets of the neural engine, as the Python engine picks them: the default, and the one
# that runs natively at 48 kHz (the plugin's klon_engine.h names both); the circuit engine's
# files go beside the first
NEURAL_SETS = {"neural": DEFAULT_SET, "neural-48k": DEFAULT_MODELS[48_000]}
DPF_PATH = Path(os.environ.get("KLON_DPF_PATH", "/usr/share/dpf"))
# where hosts look for each format's bundles (the JACK program is a plain executable)
INSTALL_DIRS = {"lv2": ".lv2", "vst3": ".vst3", "clap": ".clap", "jack": ".local/bin"}
_PACKAGES = {"make": "make", "gcc": "gcc", "g++": "g++"}


def bundle_names(layout: str, fmt: str) -> str:
    """The file or folder `fmt`'s build of `layout` is, inside the output folder."""
    return {"lv2": f"{layout}.lv2", "vst3": f"{layout}.vst3", "clap": f"{layout}.clap",
            "jack": layout}[fmt]


def parse_list(text: str, choices: tuple[str, ...], what: str) -> tuple[str, ...]:
    """'lv2,vst3' -> ('lv2', 'vst3'), each checked against choices."""
    items = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    check_choices(items, choices, what)
    return items


def check_choices(items: tuple[str, ...], choices: tuple[str, ...], what: str) -> None:
    unknown = [item for item in items if item not in choices]
    if unknown or not items:
        raise KlonError(f"unknown {what} {', '.join(map(repr, unknown)) or '(none given)'}: "
                        f"choose from {', '.join(choices)}")


def check_toolchain() -> None:
    """make, gcc, g++ and DPF, or a KlonError naming what to install."""
    for tool, package in _PACKAGES.items():
        if shutil.which(tool) is None:
            raise KlonError(f"{tool} not found: install the Debian package {package} "
                            f"(scripts/setup --plugins)")
    if not (DPF_PATH / "Makefile.plugins.mk").is_file():
        raise KlonError(f"DPF not found in {DPF_PATH}: install the Debian package dpf-source "
                        f"(scripts/setup --plugins), or set KLON_DPF_PATH")


def write_sources(src: Path) -> None:
    """The C pedals and the plugin's sources into src (a new folder)."""
    for folder, models in NEURAL_SETS.items():
        (src / folder).mkdir(parents=True)
        texts = render_library(models=models, circuit=folder == "neural")
        for name, text in texts.items():
            (src / folder / name).write_text(text)
    for path in SOURCES.iterdir():
        if path.is_file():
            shutil.copy2(path, src / path.name)


def build(src: Path, formats: tuple[str, ...], layouts: tuple[str, ...], jobs: int) -> None:
    """Run the Makefile in src; the bundles land in src's parent."""
    result = subprocess.run(
        ["make", "-C", str(src), f"-j{jobs}", f"FORMATS={' '.join(formats)}",
         f"LAYOUTS={' '.join(layouts)}", f"DPF_PATH={DPF_PATH}"], capture_output=True, text=True)
    if result.returncode != 0:
        raise KlonError(f"the plugin build failed: {first_error(result.stderr or result.stdout)}")


def first_error(log: str) -> str:
    """The line of a failed make that says why: a compiler's error, else make's own message
    (not the "Error 2" lines each enclosing make adds), else the last line."""
    lines = log.strip().splitlines() or ["make failed"]
    compiler = [line for line in lines if "error:" in line]
    stops = [line for line in lines if "***" in line and not re.search(r"\] Error \d+$", line)]
    return (compiler or stops or lines[-1:])[0].strip()


def export_plugin(out_dir: str | os.PathLike, formats: tuple[str, ...] = FORMATS,
                  layouts: tuple[str, ...] = LAYOUTS, force: bool = False,
                  jobs: int | None = None) -> list[Path]:
    """Build the plugins (each format in each channel layout) into out_dir (new or empty, or
    replaced whole with force); returns the bundles' paths."""
    check_choices(formats, FORMATS, "plugin format")
    check_choices(layouts, LAYOUTS, "channel layout")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise KlonError(f"{out} is a file: give a folder for the plugins")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise KlonError(f"{out} is not empty: give an empty or new folder, or --force to "
                        f"replace it")
    check_toolchain()
    out.parent.mkdir(parents=True, exist_ok=True)
    aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write_sources(aside / "src")
        build(aside / "src", formats, layouts, jobs or os.cpu_count() or 1)
        shutil.rmtree(aside / "src" / "build")  # objects: `make` rebuilds them
        if out.exists():
            shutil.rmtree(out)
        aside.rename(out)
    except BaseException:
        shutil.rmtree(aside, ignore_errors=True)
        raise
    return [out / bundle_names(layout, fmt) for fmt in formats for layout in layouts]


def install(bundles: list[Path], home: Path | None = None) -> list[Path]:
    """Copy bundles where hosts look for them (~/.lv2, ~/.vst3, ~/.clap, ~/.local/bin),
    replacing older copies; returns the installed paths."""
    home = Path.home() if home is None else home
    installed = []
    for bundle in bundles:
        fmt = bundle.suffix[1:] or "jack"  # the JACK program alone has no suffix
        target = home / INSTALL_DIRS[fmt] / bundle.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_dir():
            shutil.rmtree(target)
        if bundle.is_dir():
            shutil.copytree(bundle, target)
        else:
            shutil.copy2(bundle, target)
        installed.append(target)
    return installed
