"""Audio files: round trips, and one clear error for each way a file can be wrong."""
import os

import numpy as np
import pytest
import soundfile as sf

from klon.core import audio
from klon.core.errors import KlonError

FS = 44_100


def signal(channels=2, frames=3000, seed=0):
    return np.random.default_rng(seed).uniform(-0.9, 0.9, (channels, frames)).astype(np.float32)


def one_line(error):
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("extension, subtype, tolerance", [
    (".wav", "FLOAT", 0.0),
    (".wav", "PCM_16", 1.0 / 32768),
    (".wav", "PCM_24", 1.0 / 2 ** 23),
    (".flac", "PCM_24", 1.0 / 2 ** 23),
    (".aif", "PCM_16", 1.0 / 32768),
])
def test_round_trip(tmp_path, extension, subtype, tolerance):
    x = signal(channels=3)
    path = tmp_path / f"out{extension}"
    audio.write(path, x, FS, subtype=subtype)
    assert sf.info(str(path)).subtype == subtype
    y, rate = audio.read(path)
    assert rate == FS and y.dtype == np.float32 and y.shape == (3, 3000)
    assert np.max(np.abs(y - x)) <= tolerance
    assert np.max(np.abs(y - x)) > 0.0 or tolerance == 0.0  # the quantisation really happened


def test_mono_1d_and_float64_write(tmp_path):
    x = np.sin(np.linspace(0.0, 100.0, 1000))
    audio.write(tmp_path / "mono.wav", x, 8000)
    y, rate = audio.read(tmp_path / "mono.wav")
    assert rate == 8000 and y.shape == (1, 1000)
    np.testing.assert_allclose(y[0], x, atol=1e-7)


def test_as_channels_frames():
    assert audio.as_channels_frames(np.zeros(5)).shape == (1, 5)
    assert audio.as_channels_frames(np.zeros((2, 5))).shape == (2, 5)
    with pytest.raises(KlonError, match="3 dimensions"):
        audio.as_channels_frames(np.zeros((1, 2, 3)))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(KlonError, match="no such file") as error:
        audio.read(tmp_path / "nothing.wav")
    assert "nothing.wav" in one_line(error)
    with pytest.raises(KlonError, match="directory"):
        audio.read(tmp_path)


def test_text_file_named_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are not samples\n" * 20)
    with pytest.raises(KlonError, match="not a readable audio file") as error:
        audio.read(path)
    assert "notes.wav" in one_line(error)


@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_wav_truncated_mid_data(tmp_path, subtype):
    path = tmp_path / "cut.wav"
    sf.write(str(path), signal().T, FS, subtype=subtype)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2 + 3])  # mid-frame, too
    with pytest.raises(KlonError, match="truncated") as error:
        audio.read(path)
    assert "cut.wav" in one_line(error)


def test_header_only_wav(tmp_path):
    path = tmp_path / "header.wav"
    sf.write(str(path), signal().T, FS, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(KlonError, match="header.wav"):
        audio.read(path)


def test_empty_wav(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(str(path), np.zeros((0, 2)), FS)
    with pytest.raises(KlonError, match="no audio") as error:
        audio.read(path)
    assert "empty.wav" in one_line(error)


def test_float_wav_with_nan_and_inf(tmp_path):
    x = signal(channels=2, frames=FS)
    x[1, 22_050] = np.nan
    x[0, 30_000] = np.inf
    x[1, 40_000] = np.nan
    path = tmp_path / "bad.wav"
    sf.write(str(path), x.T, FS, subtype="FLOAT")
    with pytest.raises(KlonError) as error:
        audio.read(path)
    message = one_line(error)
    assert "bad.wav" in message and "3 NaN/Inf samples" in message
    assert "frame 22050" in message and "0.500 s" in message and "channel 2" in message


def test_write_refuses_non_finite_and_leaves_nothing(tmp_path):
    x = signal()
    x[0, 10] = np.inf
    with pytest.raises(KlonError, match="1 NaN/Inf sample, the first at frame 10"):
        audio.write(tmp_path / "out.wav", x, FS)
    assert os.listdir(tmp_path) == []


def test_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "out.wav"
    audio.write(path, signal(seed=1), FS)
    before = path.read_bytes()

    real_write = audio.sf.SoundFile.write

    def broken_write(self, data):
        real_write(self, data[:10])  # a half-written file, then the failure
        raise RuntimeError("disk full")

    monkeypatch.setattr(audio.sf.SoundFile, "write", broken_write)
    with pytest.raises(KlonError, match="disk full"):
        audio.write(path, signal(seed=2), FS)
    with pytest.raises(KlonError):
        audio.write(tmp_path / "new.wav", signal(seed=2), FS)
    assert sorted(os.listdir(tmp_path)) == ["out.wav"]
    assert path.read_bytes() == before


def test_write_refuses_to_overwrite_the_input(tmp_path):
    source = tmp_path / "in.wav"
    audio.write(source, signal(), FS)
    before = source.read_bytes()
    link = tmp_path / "link.wav"
    os.symlink(source, link)
    for target in (source, link, tmp_path / "." / "in.wav"):
        with pytest.raises(KlonError, match="would overwrite the input file"):
            audio.write(target, signal(seed=3), FS, protect=source)
    assert source.read_bytes() == before
    audio.write(tmp_path / "out.wav", signal(seed=3), FS, protect=source)  # elsewhere is fine


def test_write_format_errors(tmp_path):
    with pytest.raises(KlonError, match="unknown audio format 'xyz'"):
        audio.write(tmp_path / "out.xyz", signal(), FS)
    with pytest.raises(KlonError, match="no extension"):
        audio.write(tmp_path / "out", signal(), FS)
    with pytest.raises(KlonError, match="FLAC files cannot hold FLOAT"):
        audio.write(tmp_path / "out.flac", signal(), FS)
    with pytest.raises(KlonError, match="does not exist"):
        audio.write(tmp_path / "missing" / "out.wav", signal(), FS)
    with pytest.raises(KlonError, match="frames x channels"):
        audio.write(tmp_path / "out.wav", signal().T, FS)
    assert os.listdir(tmp_path) == []


def test_written_file_has_normal_permissions(tmp_path):
    path = tmp_path / "out.wav"
    audio.write(path, signal(), FS)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
