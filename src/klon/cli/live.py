"""`klon live`: the pedal on a sound card or sound server, in real time.

The parser is built without importing sounddevice; the handler imports it (klon.live.devices)
and says how to install it when it is missing.
"""
import argparse
import os
import sys

from klon.core.errors import KlonError


def add_parsers(commands) -> None:
    p = commands.add_parser("live", help="play through the pedal in real time (sound card or "
                            "sound server; keys move the knobs)",
                            description="Mono guitar in, the pedal out (stereo or mono), through "
                            "PortAudio: JACK, ALSA, PulseAudio or PipeWire, whatever the machine "
                            "has. Keys while it runs: g/t/l pick a knob, up/down (+/-) and "
                            "right/left (]/[) move it, 0-9 set it, e switches engine, q or "
                            "Ctrl-C stops.")
    p.add_argument("--engine", default="circuit", choices=["circuit", "neural"],
                   help="the engine heard first (default: circuit); the other runs beside it "
                        "when it is available at the rate, so `e` switches without a click")
    p.add_argument("--gain", type=float, default=0.5, help="Gain knob, 0..1 (default: 0.5)")
    p.add_argument("--treble", type=float, default=0.5, help="Treble knob, 0..1 (default: 0.5)")
    p.add_argument("--level", type=float, default=0.5, help="Level knob, 0..1 (default: 0.5)")
    p.add_argument("--block", type=int, default=64,
                   help="frames per callback (default: 64, 1.33 ms at 48 kHz)")
    p.add_argument("--sample-rate", type=int, default=48_000,
                   help="(default: 48000; a JACK server fixes its own rate)")
    p.add_argument("--channels", type=int, default=2, choices=[1, 2],
                   help="output channels, the pedal on each (default: 2)")
    p.add_argument("--input", default=None, metavar="DEV",
                   help="input device: index or words of its name (default: the system's)")
    p.add_argument("--output", default=None, metavar="DEV",
                   help="output device: index or words of its name (default: the system's)")
    p.add_argument("--list-devices", action="store_true",
                   help="list the devices PortAudio sees and exit")
    p.add_argument("--seconds", type=float, default=None,
                   help="stop after this much audio (default: run until q or Ctrl-C)")
    p.add_argument("--report", default=None, metavar="FILE.json",
                   help="write the run's counters (xruns, callbacks, load percentiles, levels, "
                        "settings) here at the end, atomically")
    p.add_argument("--test-tone", type=float, default=None, metavar="HZ",
                   help="play a sine of HZ on output channel 2 instead of the pedal (for a "
                        "loopback check: connect it to the input)")
    p.add_argument("--test-tone-level", type=float, default=0.25, metavar="VOLTS",
                   help="the test tone's amplitude (default: 0.25, full scale = 1)")
    p.add_argument("--meter-after", type=float, default=1.0, metavar="SECONDS",
                   help="the report's levels leave out this much of the start (default: 1)")
    # test hook: an overloaded callback, to show that the xrun counter sees the dropouts
    p.add_argument("--debug-busy-ms", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--debug-busy-every", type=int, default=50, help=argparse.SUPPRESS)


def _check(args):
    from klon.core.processor import check_knob
    for name in ("gain", "treble", "level"):
        check_knob(name, getattr(args, name))
    if args.seconds is not None and not args.seconds > 0:
        raise KlonError(f"--seconds must be positive, got {args.seconds:g}")
    if args.meter_after < 0:
        raise KlonError(f"--meter-after must be 0 or more, got {args.meter_after:g}")
    if args.debug_busy_every < 1:
        raise KlonError("--debug-busy-every must be 1 or more")
    if args.report is not None:
        folder = os.path.dirname(os.path.abspath(args.report))
        if not os.path.isdir(folder):
            raise KlonError(f"cannot write the report '{args.report}': directory '{folder}' "
                            f"does not exist")


def _live(args):
    from klon.live import devices as dev
    from klon.live import report, stream
    from klon.live.processor import LiveProcessor

    sd = dev.import_sounddevice()
    devices, hostapis, default = dev.query(sd)
    if args.list_devices:
        print(dev.listing(devices, hostapis, default))
        return
    _check(args)
    input_device = dev.choose(devices, hostapis, args.input, "input", default[0])
    output_device = dev.choose(devices, hostapis, args.output, "output", default[1])
    print("klon live: compiling and warming up the engines", file=sys.stderr, flush=True)
    processor = LiveProcessor(args.sample_rate, args.block, args.engine, args.gain, args.treble,
                              args.level, out_channels=args.channels,
                              test_tone_hz=args.test_tone, test_tone_volts=args.test_tone_level,
                              meter_after_seconds=args.meter_after)
    busy = None if args.debug_busy_ms is None else (args.debug_busy_ms / 1000,
                                                   args.debug_busy_every)
    stopped_by, wall, latency = stream.run(sd, processor, input_device, output_device,
                                           args.seconds, busy=busy)
    counters = processor.counters()
    load = counters["load_percent"]
    summary = (f"klon live: {counters['callbacks'] * processor.period:.1f} s, "
               f"{counters['callbacks']} callbacks, {counters['xruns']} xruns")
    if load["max"] is not None:
        summary += (f", callback load (% of {1000 * processor.period:.2f} ms) p50 "
                    f"{load['p50']:.1f} p99 {load['p99']:.1f} p99.9 {load['p99.9']:.1f} max "
                    f"{load['max']:.1f}")
    print(summary, file=sys.stderr)
    if args.report is not None:
        settings = {
            "engine": args.engine, "gain": args.gain, "treble": args.treble, "level": args.level,
            "sample_rate": processor.sample_rate, "block": processor.block,
            "output_channels": processor.out_channels,
            "input_device": dev.describe(devices, hostapis, input_device),
            "output_device": dev.describe(devices, hostapis, output_device),
            "latency_seconds": {"input": latency[0], "output": latency[1]},
            "seconds": args.seconds, "test_tone_hz": args.test_tone,
            "test_tone_volts": args.test_tone_level if args.test_tone else None,
            "meter_after_seconds": args.meter_after,
            "debug_busy": None if busy is None else {"ms": args.debug_busy_ms,
                                                     "every": args.debug_busy_every}}
        report.write(args.report, report.build(processor, settings, wall, stopped_by))
        print(f"klon live: wrote {args.report}", file=sys.stderr)
    if stopped_by == "stalled":  # after the report, which still says what ran
        raise KlonError(f"the audio fell {stream.STALL_SECONDS:g} s behind the clock: the "
                        f"device or audio server stalled, so the run stopped")


HANDLERS = {"live": _live}
