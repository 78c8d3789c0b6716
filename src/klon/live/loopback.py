"""`klon live` on a JACK server with its dummy driver (no sound card) and a loopback: what the
live tests and benchmarks/live.py run.

`JackServer` starts jackd under a name of its own (the clients started here get it in
JACK_DEFAULT_SERVER, and JACK_NO_START_SERVER=1 keeps a client from starting a server by
itself), and two of jackd2's example clients, `jack_thru` (each input port copied to its output
port), as the devices `klon live` plays to and records from: LOOP_OUT takes klon's two outputs,
LOOP_IN gives klon its input, and LOOP_OUT's second output (where `--test-tone` plays) is wired
to LOOP_IN's first input before klon starts. PortAudio connects a stream to its devices' ports
before the first callback, so the tone comes back from the first block on and nothing changes
the graph while klon runs: a connection made after the stream started would race the metering
(the report's levels start `--meter-after` seconds in), and every graph change can cost an xrun.

`realtime=False` runs jackd without real-time scheduling: a slow or busy machine then gives
xruns (cycles that began late or clients that finished late), which a functional check does not
count; the audio that flows is the same. JACK's freewheel mode (no clock, no deadlines) would be
the ideal, but with PortAudio's JACK host API (PortAudio 19.6, jackd2 1.9.21) it stalls the
server's graph when it is on while a stream starts, stops or opens (jackd logs
`JackFreewheelDriver::Process: SuspendRefNum error` every 10 s and the callbacks stop); see
docs/live.md.

`LiveRun` is one `klon live` process on such a server; `level_errors` compares a run's levels
with the tone sent and with the pedal run offline on the same tone.
"""
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import numpy as np

LOOP_OUT, LOOP_IN = "klon_loop_out", "klon_loop_in"
TOOLS = ("jackd", "jack_wait", "jack_lsp", "jack_connect", "jack_thru")
TONE_PORT, RETURN_PORT = f"{LOOP_OUT}:output_2", f"{LOOP_IN}:input_1"
CLOCK_STALL = "JackTimedDriver::Process XRun"  # jackd's line for a stall of its own clock
_names = itertools.count()


def missing_tools() -> list[str]:
    """The JACK programs this module needs that are not on PATH."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


class JackServer:
    """jackd with its dummy driver (`rate`, `block` frames a period, `ports` each way) and the
    loopback (loop=False: none), as a context manager; everything it starts is stopped by its
    PID at the end. jackd's output goes to `log` (its xruns are read from there), the loop
    clients' beside it. `timeout`: seconds each start-up step may take."""

    def __init__(self, log: str | os.PathLike, rate: int = 48_000, block: int = 64,
                 realtime: bool = False, timeout: float = 120.0, loop: bool = True,
                 ports: int = 2):
        self.log, self.rate, self.block = Path(log), rate, block
        self.realtime, self.timeout, self.loop = realtime, timeout, loop
        self.name = f"klon-{os.getpid()}-{next(_names)}"
        self.env = {**os.environ, "JACK_DEFAULT_SERVER": self.name, "JACK_NO_START_SERVER": "1"}
        self.command = ["jackd", "-n", self.name, "-R" if realtime else "-r", "-d", "dummy",
                        "-r", str(rate), "-p", str(block), "-C", str(ports), "-P", str(ports)]
        self._processes: list[subprocess.Popen] = []

    def __enter__(self) -> "JackServer":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        missing = missing_tools()
        if missing:
            raise RuntimeError(f"{', '.join(missing)} not found: klon live's checks need JACK "
                               f"(scripts/setup --live installs it)")
        server = self.spawn(self.command, self.log)
        wait = self.tool("jack_wait", "-w", "-t", str(int(self.timeout)), check=False)
        if wait.returncode != 0 or server.poll() is not None:
            raise RuntimeError(f"jackd did not start: {self.log_text()[-2000:]}")
        if not self.loop:
            return
        clients = self.log.with_name(self.log.stem + "-loop.log")
        for name in (LOOP_OUT, LOOP_IN):
            self.spawn(["jack_thru", name, self.name], clients)
        deadline = time.monotonic() + self.timeout
        while not {TONE_PORT, RETURN_PORT} <= set(self.tool("jack_lsp").stdout.split()):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self._processes):
                raise RuntimeError(f"the loop clients did not start: "
                                   f"{clients.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        self.tool("jack_connect", TONE_PORT, RETURN_PORT)

    def spawn(self, command: list[str], log: str | os.PathLike,
              stdin: IO | int = subprocess.DEVNULL,
              env: dict[str, str] | None = None) -> subprocess.Popen:
        """A program run against this server (its output appended to `log`), stopped by
        stop() if not before."""
        with open(log, "a") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=stdin, env={**self.env, **(env or {})})
        self._processes.append(process)
        return process

    def stop_process(self, process: subprocess.Popen) -> None:
        """One program started here: SIGTERM, SIGKILL after 10 s."""
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdin:
            process.stdin.close()
        if process in self._processes:
            self._processes.remove(process)

    def stop(self) -> None:
        """The clients, then jackd."""
        for process in reversed(list(self._processes)):
            self.stop_process(process)

    def tool(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """A JACK command-line tool run against this server."""
        result = subprocess.run(args, capture_output=True, text=True, env=self.env,
                                timeout=self.timeout + 30, stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def xrun_lines(self) -> list[str]:
        """jackd's xrun lines so far (count them before and after a run)."""
        return [line for line in self.log_text().splitlines() if "XRun" in line]


def clock_stalls(lines: list[str]) -> int:
    """How many of jackd's xrun lines are stalls of the server's own clock: the dummy driver's
    thread woke after its cycle was due. The driver outranks the clients and does not wait for
    them, so these come from the machine, not from a client, and JACK reports each one to every
    client as an xrun."""
    return sum(CLOCK_STALL in line for line in lines)


class LiveRun:
    """`klon live` in a process of its own on `server`, from LOOP_IN to LOOP_OUT at the
    server's rate and block, writing its report to `folder`/report.json and its output to
    `folder`/live.err. `seconds`: the run's length (None: until it is stopped); `args`: more
    options; `stdin`: a terminal for the keys, else none."""

    def __init__(self, server: JackServer, folder: str | os.PathLike, *args: str,
                 seconds: float | None = None, stdin: IO | int = subprocess.DEVNULL):
        folder = Path(folder)
        self.report_path, self.err_path = folder / "report.json", folder / "live.err"
        command = [sys.executable, "-m", "klon.cli", "live", "--input", LOOP_IN,
                   "--output", LOOP_OUT, "--sample-rate", str(server.rate),
                   "--block", str(server.block), "--report", str(self.report_path), *args]
        if seconds is not None:
            command += ["--seconds", str(seconds)]
        with open(self.err_path, "w") as err:
            self.process = subprocess.Popen(command, env=server.env, stdin=stdin,
                                            stdout=err, stderr=err)

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float) -> None:
        """Until `text` is in the run's output (a RuntimeError if it stops first or the time
        is up)."""
        deadline = time.monotonic() + timeout
        while text not in self.stderr():
            if self.process.poll() is not None:
                raise RuntimeError(f"klon live stopped before {text!r}:\n{self.stderr()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {text!r} from klon live in {timeout:g} s:\n"
                                   f"{self.stderr()}")
            time.sleep(0.05)

    def wait_streaming(self, timeout: float) -> None:
        """Until the stream runs (the first run of a fresh clone compiles the kernels)."""
        self.wait_for("klon live: streaming", timeout)

    def finish(self, timeout: float) -> dict[str, Any]:
        """Wait for the run to end (killed if it has not after `timeout` s); its report. A
        RuntimeError if it failed or wrote none."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"klon live still ran after {timeout:g} s:\n{self.stderr()}") \
                from None
        if self.process.returncode != 0 or not self.report_path.exists():
            raise RuntimeError(f"klon live failed (exit status {self.process.returncode}):\n"
                               f"{self.stderr()}")
        return json.loads(self.report_path.read_text())

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def tone(sample_rate: float, frames: int, hz: float, volts: float) -> np.ndarray:
    """The test tone as `klon live --test-tone` plays it, from phase 0 (float32 volts)."""
    return (volts * np.sin(2 * np.pi * hz * np.arange(frames) / sample_rate)).astype(np.float32)


def pedal_rms(engine: str, sample_rate: float, hz: float, volts: float, gain: float = 0.5,
              treble: float = 0.5, level: float = 0.5) -> float:
    """The pedal's output level (RMS, volts) for the test tone, run offline: the last second of
    three (it has settled within one)."""
    from klon.pedal.centaur import Centaur
    rate = int(sample_rate)
    pedal = Centaur(sample_rate, gain, treble, level, engine=engine)
    y = pedal(tone(sample_rate, 3 * rate, hz, volts)).astype(np.float64)
    return float(np.sqrt(np.mean(y[-rate:] ** 2)))


def level_errors(report: dict[str, Any]) -> tuple[float, float]:
    """A loopback run's levels against what they should be, in dB: the input's RMS against the
    test tone's (volts / sqrt 2), and the output's against the pedal's (engine_at_end, the
    run's knobs) run offline on the same tone. Both 0 for a sample-exact path."""
    settings, levels = report["settings"], report["levels"]
    hz, volts = settings["test_tone_hz"], settings["test_tone_volts"]
    expected = pedal_rms(report["engine_at_end"], settings["sample_rate"], hz, volts,
                         settings["gain"], settings["treble"], settings["level"])
    return (_db_ratio(levels["input"]["rms"], volts / math.sqrt(2)),
            _db_ratio(levels["output"]["rms"], expected))


def _db_ratio(value: float | None, reference: float) -> float:
    return 20 * math.log10(value / reference) if value else -math.inf
