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


# --- block by block: the same checks, a clipping count ---------------------------------------

def test_blocks_read_the_same_audio_and_find_nan_mid_file(tmp_path):
    x = signal(channels=2, frames=FS)
    path = tmp_path / "in.wav"
    sf.write(str(path), x.T, FS, subtype="FLOAT")
    with audio.open_audio(path) as reader:
        assert (reader.sample_rate, reader.channels, reader.frames) == (FS, 2, FS)
        np.testing.assert_array_equal(np.concatenate(list(reader.blocks(1000)), axis=1), x)
    x[1, 30_000] = np.nan
    x[0, 40_000] = np.inf
    sf.write(str(path), x.T, FS, subtype="FLOAT")
    with audio.open_audio(path) as reader, pytest.raises(KlonError) as error:
        for _ in reader.blocks(4096):
            pass
    message = one_line(error)
    assert message == str(pytest.raises(KlonError, audio.read, path).value)  # as read says it
    assert "2 NaN/Inf samples, the first at frame 30000" in message and "channel 2" in message


def test_blocks_notice_a_truncated_flac_at_the_end(tmp_path):
    path = tmp_path / "cut.flac"
    sf.write(str(path), signal(frames=FS).T, FS, subtype="PCM_24")
    path.write_bytes(path.read_bytes()[:-5000])
    with pytest.raises(KlonError, match="truncated") as error:
        with audio.open_audio(path) as reader:
            for _ in reader.blocks(4096):
                pass
    assert "cut.flac" in one_line(error)


def test_writer_counts_clipped_samples_in_integer_formats(tmp_path):
    x = np.array([[0.5, 1.0, 1.5, -2.0, 0.0]], dtype=np.float32)
    with audio.AudioWriter(tmp_path / "out.flac", FS, 1, audio.best_subtype("x.flac")) as writer:
        writer.write(x)
        writer.write(x)
    assert writer.subtype == "PCM_24" and writer.clips
    assert (writer.clipped, writer.peak, writer.frames) == (4, 2.0, 10)
    y, _ = audio.read(tmp_path / "out.flac")
    assert np.max(np.abs(y)) <= 1.0  # clipped, not wrapped
    with audio.AudioWriter(tmp_path / "out.wav", FS, 1, audio.best_subtype("x.wav")) as writer:
        writer.write(x)
    assert writer.subtype == "FLOAT" and not writer.clips and writer.clipped == 0
    np.testing.assert_array_equal(audio.read(tmp_path / "out.wav")[0], x)


def test_writer_checks_everything_before_a_file_exists(tmp_path):
    (tmp_path / "keep.wav").write_bytes(b"keep")
    (tmp_path / "keep.wav").chmod(0o444)
    for path, words in [(tmp_path / "keep.wav", "read-only"), (tmp_path, "directory"),
                        (tmp_path / "no" / "out.wav", "does not exist"),
                        (tmp_path / "out.flac", "cannot hold FLOAT")]:
        with pytest.raises(KlonError, match=words):
            audio.AudioWriter(path, FS, 2)
    writer = audio.AudioWriter(tmp_path / "out.wav", FS, 2)
    with pytest.raises(KlonError, match="NaN/Inf at frame 3 "), writer:
        writer.write(np.zeros((2, 3)))
        writer.write(np.full((2, 3), np.nan))
    assert sorted(os.listdir(tmp_path)) == ["keep.wav"]
