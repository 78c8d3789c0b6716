"""The duplex stream: the PortAudio callback around the processor, and the run in the main
thread (keys, status line, the end of the run).

The callback (PortAudio's audio thread; with JACK, the server's real-time client thread) holds
the GIL for its work only, so the main thread stays idle meanwhile: it sleeps in select() or
time.sleep() between keys and status lines. The cyclic garbage collector is frozen and off
while the stream runs, so a collection (which would hold the GIL for milliseconds) never lands
in a callback.
"""
import ctypes
import gc
import signal
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from klon.core.errors import KlonError
from klon.live import devices as dev
from klon.live.processor import LiveProcessor
from klon.live.ui import KEYS_HELP, QUIT, Panel, Terminal, status_line

STATUS_SECONDS = 0.2        # status line redraw on a terminal
PLAIN_STATUS_SECONDS = 5.0  # a plain status line without one
# audio this far behind the wall clock means the device or server stalled (a wedged JACK graph
# calls back only now and then): the run stops and says so, rather than wait for ever
STALL_SECONDS = 10.0
MCL_CURRENT = 1  # mlockall: the pages mapped now (<sys/mman.h>)


def make_callback(processor: LiveProcessor, abort: type[BaseException],
                  busy: tuple[float, int] | None = None) -> tuple[Callable, list]:
    """The stream's callback and the list that gets the exception that stopped it, if one did.

    The callback runs the processor's block, then puts its own timing and the status flags into
    the counters; nothing in it allocates. It is a plain function, not an object with __call__:
    sounddevice calls it with five arguments, and CPython 3.11 allocates to prepend `self` to
    five. An exception never goes into PortAudio's thread: the stream stops (`abort`), the main
    thread reports it.

    busy = (seconds, every): a test hook; every `every`-th callback also busy-waits that long
    (counted in its load), to show that the xrun counter catches the dropouts an overloaded
    callback causes.
    """
    failure = []
    process, record, clock = processor.process, processor.record, time.perf_counter

    def work(indata, outdata, status, start):
        try:
            process(indata, outdata)
        except BaseException as error:
            failure.append(error)
            raise abort from None
        record(start, clock() - start, status._flags)

    def callback(indata, outdata, frames, time_info, status):
        work(indata, outdata, status, clock())

    if busy is None:
        return callback, failure
    seconds, every = busy
    count = [0]

    def busy_callback(indata, outdata, frames, time_info, status):
        start = clock()
        count[0] += 1
        if count[0] % every == 0:
            while clock() - start < seconds:
                pass
        work(indata, outdata, status, start)

    return busy_callback, failure


def open_stream(sd: ModuleType, processor: LiveProcessor, input_device: int, output_device: int,
                callback: Callable) -> Any:
    """The duplex stream: 1 input channel (the guitar), 1 or 2 output channels, float32,
    the processor's block size, PortAudio's low-latency suggestion."""
    devices, hostapis, _ = dev.query(sd)
    settings = dict(device=(input_device, output_device), samplerate=processor.sample_rate,
                    channels=(1, processor.out_channels), dtype="float32")
    for kind, index, check in (("input", input_device, sd.check_input_settings),
                               ("output", output_device, sd.check_output_settings)):
        try:
            check(device=index, channels=1 if kind == "input" else processor.out_channels,
                  dtype="float32", samplerate=processor.sample_rate)
        except sd.PortAudioError as error:
            rate = devices[index]["default_samplerate"]
            hint = (f"; this device runs at {rate:g} Hz: try --sample-rate {rate:g}"
                    if rate != processor.sample_rate else "")
            raise KlonError(f"the {kind} device {dev.describe(devices, hostapis, index)} "
                            f"refuses {processor.sample_rate:g} Hz, float32, "
                            f"{processor.out_channels if kind == 'output' else 1} channel(s): "
                            f"{_reason(error)}{hint}") from None
    try:
        return sd.Stream(blocksize=processor.block, latency="low", callback=callback, **settings)
    except sd.PortAudioError as error:
        raise KlonError(f"cannot open the audio stream "
                        f"({dev.describe(devices, hostapis, input_device)} in, "
                        f"{dev.describe(devices, hostapis, output_device)} out, "
                        f"{processor.sample_rate:g} Hz, {processor.block}-frame blocks): "
                        f"{_reason(error)}") from None


def _reason(error):
    return str(error.args[0]) if error.args else str(error)


def _lock_memory():
    """Keep every page the process has in RAM (mlockall), so the callback never waits for a page
    fault (the compiled kernels' code, arrays touched for the first time). Where the system
    refuses (no permission, a low RLIMIT_MEMLOCK) the stream runs all the same."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mlockall(MCL_CURRENT)
    except (OSError, AttributeError):
        pass


def run(sd: ModuleType, processor: LiveProcessor, input_device: int, output_device: int,
        seconds: float | None = None, terminal: Terminal | None = None,
        busy: tuple[float, int] | None = None) -> tuple[str, float, tuple]:
    """Stream until `seconds` of audio have passed, q, Ctrl-C, or the stream stops by itself.
    Returns (how it stopped, wall seconds, the stream's latency (in, out) in seconds)."""
    callback, failure = make_callback(processor, sd.CallbackAbort, busy)
    stream = open_stream(sd, processor, input_device, output_device, callback)
    terminal = Terminal() if terminal is None else terminal
    panel = Panel(processor)
    devices, hostapis, _ = dev.query(sd)
    standby = (f" ({processor.engines[1 - processor.engines.index(processor.engine)]} on "
               f"standby: e switches)" if len(processor.engines) == 2 else "")
    frames_wanted = None if seconds is None else seconds * processor.sample_rate
    stopped_by, latency = "stream", (None, None)
    gc_off(processor)
    _lock_memory()
    # SIGTERM stops the run as Ctrl-C does: the stream closes and the report is written. Both
    # are set here, so that a SIGINT ignored by whoever started klon (a shell's background job)
    # still stops it
    previous = {signum: signal.signal(signum, _interrupt)
                for signum in (signal.SIGINT, signal.SIGTERM)}
    started = time.monotonic()
    try:
        with terminal:
            try:
                stream.start()
            except sd.PortAudioError as error:
                raise KlonError(f"cannot start the audio stream: {_reason(error)}") from None
            latency = tuple(stream.latency)
            terminal.say(
                f"klon live: streaming the {processor.engine} engine{standby} at "
                f"{processor.sample_rate:g} Hz, {processor.block}-frame blocks "
                f"({1000 * processor.period:.2f} ms); in: "
                f"{dev.describe(devices, hostapis, input_device)}, out: "
                f"{dev.describe(devices, hostapis, output_device)}; latency "
                f"{1000 * latency[0]:.1f} ms in, {1000 * latency[1]:.1f} ms out")
            if processor.unavailable:
                terminal.say(processor.unavailable)
            if terminal.keys:
                terminal.say(KEYS_HELP)
            stopped_by = watch(stream, processor, panel, terminal, frames_wanted)
    except KeyboardInterrupt:
        stopped_by = "interrupt"
    finally:
        try:
            stream.stop()
            stream.close()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            gc_on()
    wall = time.monotonic() - started
    if failure:
        raise KlonError(f"the audio callback failed: {failure[0]!r}")
    return stopped_by, wall, latency


def gc_off(processor: LiveProcessor) -> None:
    """The cyclic garbage collector out of the audio thread's way while the stream runs: a
    collection would hold the GIL for milliseconds. One last full collection, then the
    processor's warm-up again (a full collection empties CPython's free lists, which the few
    short-lived objects of a block, and of a knob move, would otherwise take from malloc again
    in the stream's first blocks), then everything left is frozen and the collector is off."""
    gc.collect()
    processor.warm_up()
    gc.freeze()
    gc.disable()


def gc_on() -> None:
    """The collector back, after the stream."""
    gc.enable()
    gc.unfreeze()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def watch(stream, processor, panel, terminal, frames_wanted, stall_seconds=STALL_SECONDS):
    """The main thread while the stream runs: keys, the status line, and the end of the run.
    Returns how it ended: "seconds" (frames_wanted played), "stream" (it stopped by itself),
    "stalled" (its audio fell stall_seconds behind the clock) or "key" (q)."""
    interval = STATUS_SECONDS if terminal.in_place else PLAIN_STATUS_SECONDS
    started = time.monotonic()
    next_status = started + interval
    seen = 0
    while True:
        callbacks = processor.callbacks()
        if frames_wanted is not None and callbacks * processor.block >= frames_wanted:
            return "seconds"
        if not stream.active:
            return "stream"
        if time.monotonic() - started - callbacks * processor.period > stall_seconds:
            return "stalled"
        for key in terminal.wait_keys(min(0.1, interval)):
            message = panel.handle(key)
            if message == QUIT:
                return "key"
            if message:
                terminal.say(message)
        if time.monotonic() >= next_status:
            loads, seen = processor.recent_loads(seen)
            terminal.show(status_line(panel, processor.now(), loads))
            next_status += interval
