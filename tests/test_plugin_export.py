"""`klon export plugin` as a user meets it: the command's errors, one line each, and a failed
build that leaves nothing behind. (The plugins themselves are tested in their hosts:
test_plugin_vst3.py, test_plugin_clap.py, test_plugin_lv2.py.)"""
import os
import subprocess

import pytest
from conftest import KLON, TIMEOUT, built_plugins, run_klon


@pytest.mark.parametrize("args, message", [
    (["--formats", "lv2,au"], "unknown plugin format 'au'"),
    (["--layouts", "klon_quad"], "unknown channel layout 'klon_quad'"),
    (["--formats", ","], "unknown plugin format (none given)"),
])
def test_bad_choices_are_one_line(tmp_path, args, message):
    result = run_klon("export", "plugin", tmp_path / "out", *args)
    assert result.returncode == 2
    assert result.stderr.strip() == f"klon: error: {result.stderr.strip()[13:]}"
    assert message in result.stderr and not (tmp_path / "out").exists()


def test_a_folder_with_files_is_refused_without_force(tmp_path):
    (tmp_path / "mine.txt").write_text("keep")
    result = run_klon("export", "plugin", tmp_path)
    assert result.returncode == 2 and "is not empty" in result.stderr
    assert (tmp_path / "mine.txt").read_text() == "keep"


def test_missing_dpf_names_the_package(tmp_path):
    env = dict(os.environ, KLON_DPF_PATH=str(tmp_path / "no-dpf"))
    result = subprocess.run([*KLON, "export", "plugin", str(tmp_path / "out")], env=env,
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 2 and "dpf-source" in result.stderr
    assert "scripts/setup --plugins" in result.stderr


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    """DPF's makefile fails (a stand-in that stops make): one line naming the failure, no
    output folder, no half-built folder beside it."""
    dpf = tmp_path / "broken-dpf"
    dpf.mkdir()
    (dpf / "Makefile.plugins.mk").write_text("$(error this DPF is broken)\n")
    env = dict(os.environ, KLON_DPF_PATH=str(dpf))
    result = subprocess.run([*KLON, "export", "plugin", str(tmp_path / "out"), "--formats",
                             "clap", "--layouts", "klon_mono"], env=env, capture_output=True,
                            text=True, timeout=TIMEOUT)
    assert result.returncode == 2
    assert "the plugin build failed" in result.stderr and "this DPF is broken" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken-dpf"]


def test_install_puts_each_bundle_where_hosts_look(tmp_path_factory, tmp_path):
    from klon.export.plugin.build import install
    plugins = built_plugins(tmp_path_factory)
    bundles = [plugins / name for name in ("klon_mono.lv2", "klon_mono.vst3", "klon_mono.clap",
                                           "klon_mono")]
    for _ in range(2):  # a second install replaces the first
        installed = install(bundles, home=tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in installed] == [
        ".lv2/klon_mono.lv2", ".vst3/klon_mono.vst3", ".clap/klon_mono.clap",
        ".local/bin/klon_mono"]
    assert (tmp_path / ".lv2/klon_mono.lv2/manifest.ttl").is_file()
    assert os.access(tmp_path / ".local/bin/klon_mono", os.X_OK)
    copied = (tmp_path / ".clap/klon_mono.clap").read_bytes()
    assert copied == (plugins / "klon_mono.clap").read_bytes()
