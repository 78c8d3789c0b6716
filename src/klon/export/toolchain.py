"""The C toolchains the export is proven with: the host's gcc, arm-none-eabi-gcc for a Cortex-M7,
and QEMU's mps2-an500 board (a Cortex-M7) to run what that builds.

- `host_library(sources, output)`: a shared library for ctypes, built with the strict flags every
  generated file must pass (HOST_FLAGS: C99, -Wall -Wextra -Werror -pedantic).
- `cortex_m7_program(sources, output)`: an ELF for the mps2-an500 with the board files in
  c/board/ (vector table and reset handler, linker script) and newlib's semihosting (rdimon), so
  the program reads and writes host files with fopen/fread/fwrite.
- `run_cortex_m7(elf, args)`: runs it under QEMU with `-icount shift=0` (one nanosecond of
  virtual time per instruction), always inside `timeout`, and returns what it printed.
- `size(path)`: text/data/bss from arm-none-eabi-size.

A missing tool is a KlonError naming the Debian package and `scripts/setup --embedded`.
"""
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from klon.core.errors import KlonError

BOARD = Path(__file__).with_name("cortex_m7") / "board"
HOST_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic")
CORTEX_M7_FLAGS = ("-mcpu=cortex-m7", "-mfpu=fpv5-d16", "-mfloat-abi=hard", "-mthumb")
QEMU_MACHINE = "mps2-an500"
MAX_COMMAND_LINE = 255  # newlib's rdimon crt0 reads argv into a 256-byte buffer
# the program prints "KLON <name> <value>" lines; run_cortex_m7 collects them
_VALUE_LINE = re.compile(r"^KLON (\w+) (\S+)\s*$", re.MULTILINE)

_PACKAGES = {"gcc": "gcc", "arm-none-eabi-gcc": "gcc-arm-none-eabi",
             "arm-none-eabi-size": "binutils-arm-none-eabi",
             "qemu-system-arm": "qemu-system-arm", "timeout": "coreutils"}


def find_tool(name):
    """The path of a toolchain program, or a KlonError that says how to install it."""
    path = shutil.which(name)
    if path is None:
        package = _PACKAGES.get(name, name)
        raise KlonError(f"{name} not found: install the Debian package {package} "
                        f"(scripts/setup --embedded installs the whole embedded toolchain)")
    return path


def _check_rdimon(gcc):
    """newlib's semihosting library for the Cortex-M7 hard-float build."""
    found = subprocess.run([gcc, *CORTEX_M7_FLAGS, "-print-file-name=librdimon.a"],
                           capture_output=True, text=True).stdout.strip()
    if not os.path.isabs(found):
        raise KlonError("newlib's semihosting library (librdimon.a) not found for the Cortex-M7: "
                        "install the Debian package libnewlib-arm-none-eabi (scripts/setup "
                        "--embedded)")


def _compile(command, what):
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True)
    if result.returncode != 0:
        raise KlonError(f"{what} failed:\n{result.stderr.strip() or result.stdout.strip()}")
    return result


def _options(optimisation, flags, include_dirs, defines):
    return ([optimisation, *flags] + [f"-I{d}" for d in include_dirs]
            + [f"-D{d}" for d in defines])


def host_library(sources, output, *, optimisation="-O2", flags=(), include_dirs=(), defines=()):
    """Build C sources into a shared library (for ctypes) with the host gcc and HOST_FLAGS;
    returns its path. `defines`: NAME or NAME=VALUE."""
    gcc = find_tool("gcc")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    _compile([gcc, *HOST_FLAGS, *_options(optimisation, flags, include_dirs, defines),
              "-fPIC", "-shared", *sources, "-o", output, "-lm"], f"gcc (building {output.name})")
    return output


def host_program(sources, output, *, optimisation="-O2", flags=(), include_dirs=(), defines=()):
    """Build C sources into a host executable (HOST_FLAGS, libm); returns its path."""
    gcc = find_tool("gcc")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    _compile([gcc, *HOST_FLAGS, *_options(optimisation, flags, include_dirs, defines),
              *sources, "-o", output, "-lm"], f"gcc (building {output.name})")
    return output


def cortex_m7_program(sources, output, *, optimisation="-O2", flags=(), include_dirs=(),
                      defines=(), semihosting=True):
    """Cross-compile C sources with the board's startup file and linker script into an ELF for
    QEMU's mps2-an500 (Cortex-M7, FPv5 double-precision FPU, hard float); returns its path.

    semihosting=True links newlib's rdimon (stdio on host files through the debugger interface);
    False links newlib's nosys stubs: a program that does no I/O, whose size is what the firmware
    would carry."""
    gcc = find_tool("arm-none-eabi-gcc")
    if semihosting:
        _check_rdimon(gcc)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    specs = "rdimon.specs" if semihosting else "nosys.specs"
    _compile([gcc, *HOST_FLAGS, *CORTEX_M7_FLAGS,
              *_options(optimisation, flags, include_dirs, defines),
              "-ffunction-sections", "-fdata-sections", f"--specs={specs}",
              "-T", BOARD / f"{QEMU_MACHINE}.ld", "-Wl,--gc-sections",
              BOARD / "startup.c", *sources, "-o", output, "-lm"],
             f"arm-none-eabi-gcc (building {output.name})")
    return output


def cortex_m7_object(source, output, *, optimisation="-O2", flags=(), include_dirs=(),
                     defines=()):
    """Compile one C file for the Cortex-M7 (unused functions in sections of their own, as a
    firmware link with --gc-sections would drop them); returns the object's path."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    _compile([find_tool("arm-none-eabi-gcc"), *HOST_FLAGS, *CORTEX_M7_FLAGS,
              *_options(optimisation, flags, include_dirs, defines), "-ffunction-sections",
              "-fdata-sections", "-c", source, "-o", output],
             f"arm-none-eabi-gcc (compiling {Path(source).name})")
    return output


@dataclass
class Sizes:
    """Bytes per section kind, as arm-none-eabi-size counts them (Berkeley format)."""

    text: int  # code and constants: flash
    data: int  # initialised variables: flash (their initial values) and RAM
    bss: int  # zeroed variables: RAM

    @property
    def flash(self):
        return self.text + self.data

    @property
    def ram(self):
        return self.data + self.bss


def size(path):
    """Sizes of an ELF or object file (several object files: their sum)."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    out = _compile([find_tool("arm-none-eabi-size"), "-B", *paths], "arm-none-eabi-size").stdout
    total = [0, 0, 0]
    for line in out.splitlines()[1:]:
        fields = line.split()
        for i in range(3):
            total[i] += int(fields[i])
    return Sizes(*total)


@dataclass
class QemuRun:
    """What a program printed under QEMU, and the "KLON <name> <value>" lines as values."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    values: dict = field(default_factory=dict)

    def value(self, name):
        if name not in self.values:
            raise KlonError(f"the Cortex-M7 program did not report '{name}':\n{self.stdout}"
                            f"{self.stderr}")
        return self.values[name]


def qemu_command(elf, args=(), *, timeout=120, icount=True):
    """The command line: `timeout` around qemu-system-arm on the mps2-an500 with semihosting to
    the host's files (paths as the host sees them) and, with icount, one nanosecond of virtual
    time per instruction (shift=0) so that SysTick counts instructions."""
    # semihosting arguments: the first is the program's name (argv[0]); a comma is doubled.
    # newlib's start-up reads the command line into 256 bytes: longer would be cut silently
    words = ["prog", *map(str, args)]
    if len(" ".join(words)) > MAX_COMMAND_LINE:
        raise KlonError(f"the command line for {Path(elf).name} is {len(' '.join(words))} "
                        f"characters; newlib's semihosting start-up takes {MAX_COMMAND_LINE} at "
                        f"most (use shorter paths)")
    semihosting = ",".join(["enable=on", "target=native"] + [
        "arg=" + w.replace(",", ",,") for w in words])
    command = [find_tool("timeout"), "-k", "5", str(timeout), find_tool("qemu-system-arm"),
               "-M", QEMU_MACHINE, "-nographic", "-monitor", "none", "-serial", "null",
               "-semihosting-config", semihosting, "-kernel", str(elf)]
    if icount:
        command += ["-icount", "shift=0"]
    return command


def run_cortex_m7(elf, args=(), *, timeout=120, icount=True, check=True):
    """Run an ELF built by cortex_m7_program under QEMU (killed after `timeout` seconds).
    `args` reach main's argv (after the program name). With check, a non-zero exit status (or
    the timeout) is a KlonError holding what the program printed."""
    command = qemu_command(elf, args, timeout=timeout, icount=icount)
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    run = QemuRun(result.returncode, result.stdout, result.stderr, seconds,
                  {m.group(1): _number(m.group(2)) for m in _VALUE_LINE.finditer(result.stdout)})
    if check and result.returncode != 0:
        why = (f"killed after {timeout} s" if result.returncode in (124, 137)
               else f"exit status {result.returncode}")
        raise KlonError(f"{Path(elf).name} under qemu-system-arm -M {QEMU_MACHINE}: {why}\n"
                        f"{result.stdout}{result.stderr}".rstrip())
    return run


def _number(text):
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text
