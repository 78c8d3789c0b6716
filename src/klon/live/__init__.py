"""`klon live`: the pedal on a sound card or sound server, in real time.

processor: the audio thread's work, testable without a device (engines, knobs, crossfade,
meters, counters); stream: PortAudio through sounddevice (devices, the callback, the run);
ui: the terminal's keys and status line; report: the JSON counters of a run; loopback: a JACK
server with its dummy driver and a loopback, to run `klon live` without a sound card (the tests
and benchmarks/live.py).
"""
