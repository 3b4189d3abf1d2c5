from pathlib import Path

from digitnet import config


def test_defaults_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("DIGITNET_HOME", raising=False)
    monkeypatch.delenv("DIGITNET_DATA", raising=False)
    assert config.home() == Path.home() / ".digitnet"
    assert config.resolve_cache_dir(None) == Path.home() / ".digitnet" / "data"
    assert config.resolve_data_dir(None) is None
    monkeypatch.setenv("DIGITNET_HOME", str(tmp_path))
    monkeypatch.setenv("DIGITNET_DATA", str(tmp_path / "mine"))
    assert config.resolve_cache_dir(None) == tmp_path / "data"
    assert config.resolve_data_dir(None) == tmp_path / "mine"
    assert config.resolve_data_dir("/x") == Path("/x")  # an argument wins over the environment
    assert config.resolve_cache_dir("/c") == Path("/c")
