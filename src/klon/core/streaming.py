"""A processor run over a file from disk to disk, block by block, so memory stays flat
whatever the file's length and an interrupt is felt within one block.

The output equals the whole-file `processor(x)` sample for sample: the processor starts from
rest, the first `latency` samples it gives are dropped and `latency` zeros are fed after the
input, exactly as `Processor.__call__` does (processors with fixed knobs are block-size
invariant).
"""
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from klon.core.audio import AudioReader, AudioWriter
from klon.core.processor import Processor

# seconds of compute a block should take: short enough that Ctrl-C is felt at once, long
# enough that the per-block cost (a few microseconds of Python) is nothing
TARGET_BLOCK_SECONDS = 0.1
MIN_BLOCK, FIRST_BLOCK, MAX_BLOCK = 256, 4096, 65_536


def decibels(volts: float) -> float:
    """A level relative to 1 V (0 dBFS in a float file), -inf for silence."""
    return 20.0 * math.log10(volts) if volts > 0 else -math.inf


def gain_factor(db: float) -> np.float32:
    return np.float32(10.0 ** (db / 20.0))


@dataclass
class StreamReport:
    """What a run did: frames per channel, channels, rate, the peaks (volts; the input's as
    read, before any input gain), the samples clipped by an integer format, and seconds."""
    frames: int
    channels: int
    sample_rate: int
    input_peak: float
    output_peak: float
    clipped: int
    subtype: str
    clips: bool
    seconds: float


def next_block_size(size: int, elapsed: float) -> int:
    """The block size (a power of two) that should take about TARGET_BLOCK_SECONDS, given that
    `size` frames took `elapsed` seconds."""
    if elapsed <= 0:
        return min(size * 2, MAX_BLOCK)
    ideal = size * TARGET_BLOCK_SECONDS / elapsed
    power = 1 << max(int(math.log2(max(ideal, 1.0))), 0)
    return int(min(max(power, MIN_BLOCK), MAX_BLOCK, size * 4))


def stream(processor: Processor, reader: AudioReader, writer: AudioWriter,
           input_gain_db: float = 0.0, output_gain_db: float = 0.0,
           progress: Callable[[int], None] | None = None,
           first_block: Callable[[], None] | None = None) -> StreamReport:
    """Read `reader` to its end through `processor` into the open `writer`. `progress(frames)`
    is called after each block with the input frames done; `first_block()` once the first
    block is out (the kernels are compiled by then). Gains in dB multiply the input before the
    processor and its output after it (in float32; 0 dB leaves the samples untouched)."""
    start = time.monotonic()
    channels = reader.channels
    in_gain, out_gain = gain_factor(input_gain_db), gain_factor(output_gain_db)
    processor.reset(channels)
    skip = processor.latency  # output samples that come before the first input sample
    input_peak = 0.0
    size = FIRST_BLOCK

    def run(block: np.ndarray) -> None:
        nonlocal skip
        if input_gain_db:
            block = block * in_gain
        y = processor.process(block)
        if output_gain_db:
            y *= out_gain
        if skip:
            dropped = min(skip, y.shape[1])
            y, skip = y[:, dropped:], skip - dropped
        writer.write(y)

    while True:
        began = time.monotonic()
        block = reader.next_block(size)
        if block is None:
            break
        input_peak = max(input_peak, float(np.max(np.abs(block))))
        run(block)
        if first_block is not None:
            first_block()
            first_block = None
        size = next_block_size(size, time.monotonic() - began)
        if progress is not None:
            progress(reader.decoded)
    if processor.latency:
        run(np.zeros((channels, processor.latency), dtype=np.float32))
    return StreamReport(frames=writer.frames, channels=channels,
                        sample_rate=int(reader.sample_rate), input_peak=input_peak,
                        output_peak=writer.peak, clipped=writer.clipped,
                        subtype=writer.subtype, clips=writer.clips,
                        seconds=time.monotonic() - start)
