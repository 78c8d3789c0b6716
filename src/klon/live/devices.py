"""Sound devices through sounddevice (PortAudio): import, listing, choice, clear errors.

sounddevice is imported only here and only when `klon live` runs, so klon imports without it.
PortAudio scans its host APIs (ALSA, JACK, PulseAudio/PipeWire through ALSA, OSS) when
sounddevice is imported: a sound server started later is seen only after `rescan`.
"""
from types import ModuleType

from klon.core.errors import KlonError

SETUP_HINT = "run scripts/setup --live (PortAudio, JACK and the sounddevice package)"
NO_DEVICES = ("no audio device found: PortAudio sees no sound card and no sound server (JACK, "
              "PulseAudio, PipeWire). Start one (e.g. `jackd -d alsa`, or `jackd -d dummy` to "
              "try klon live without a sound card) or plug in an interface, then check "
              "`klon live --list-devices`")


def import_sounddevice() -> ModuleType:
    try:
        import sounddevice
    except ImportError:
        raise KlonError(f"klon live needs the sounddevice package: {SETUP_HINT}") from None
    except OSError as error:  # sounddevice is there, the PortAudio library is not
        raise KlonError(f"klon live needs the PortAudio library ({error}): {SETUP_HINT}") \
            from None
    return sounddevice


def rescan(sd: ModuleType) -> None:
    """Make PortAudio look for devices and servers again (one started after the import)."""
    sd._terminate()
    sd._initialize()


def describe(devices: list[dict], hostapis: list[dict], index: int) -> str:
    device = devices[index]
    return f"{device['name']} ({hostapis[device['hostapi']]['name']})"


def listing(devices: list[dict], hostapis: list[dict],
            default: tuple[int, int] = (-1, -1)) -> str:
    """The devices as text: index, name, host API, channels in/out, default rate; `>` and `<`
    mark the default input and output."""
    if not devices:
        return NO_DEVICES
    lines = []
    for i, d in enumerate(devices):
        mark = (">" if i == default[0] else " ") + ("<" if i == default[1] else " ")
        lines.append(f"{mark} {i:3d}  {d['name']} ({hostapis[d['hostapi']]['name']}): "
                     f"{d['max_input_channels']} in, {d['max_output_channels']} out, "
                     f"{d['default_samplerate']:g} Hz")
    return "\n".join(lines)


def choose(devices: list[dict], hostapis: list[dict], want: str | int | None, kind: str,
           default: int = -1) -> int:
    """The index of the `kind` ("input" or "output") device asked for: `want` is None (the
    default device, else the first with such channels), an index, or words that appear in order
    in "name (host API)", case ignored (an exact name wins over partial matches)."""
    if not devices:
        raise KlonError(NO_DEVICES)
    key = f"max_{kind}_channels"
    usable = [i for i, d in enumerate(devices) if d[key] > 0]
    if want is None:
        if default in usable:
            return default
        if not usable:
            raise KlonError(f"no {kind} device: PortAudio sees {len(devices)} device(s), none "
                            f"with {kind} channels (see `klon live --list-devices`)")
        return usable[0]
    text = str(want).strip()
    if text.isdigit():
        index = int(text)
        if index >= len(devices):
            raise KlonError(f"no device {index}: there are {len(devices)} "
                            f"(see `klon live --list-devices`)")
        if index not in usable:
            raise KlonError(f"device {index}, {describe(devices, hostapis, index)}, has no "
                            f"{kind} channels")
        return index
    words = text.lower().split()
    matches = []
    for i in usable:
        full = describe(devices, hostapis, i).lower()
        position = 0
        for word in words:
            position = full.find(word, position)
            if position < 0:
                break
            position += len(word)
        else:
            matches.append(i)
    exact = [i for i in matches if devices[i]["name"].lower() == text.lower()]
    if len(exact) == 1 or len(matches) == 1:
        return (exact or matches)[0]
    if not matches:
        raise KlonError(f"no {kind} device matches {text!r} (see `klon live --list-devices`)")
    names = "; ".join(f"{i}: {describe(devices, hostapis, i)}" for i in matches)
    raise KlonError(f"{len(matches)} {kind} devices match {text!r} ({names}): give its index")


def query(sd: ModuleType) -> tuple[list[dict], list[dict], tuple[int, int]]:
    """(devices, host APIs, (default input, default output)) as plain lists and tuples."""
    devices = [dict(d) for d in sd.query_devices()]
    hostapis = [dict(h) for h in sd.query_hostapis()]
    default = tuple(int(i) if i is not None else -1 for i in sd.default.device)
    return devices, hostapis, default
