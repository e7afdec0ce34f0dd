from importlib import resources

import pytest


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> str:
    """One cache for the session: the ONNX export of a model is made once, as in real use."""
    return str(tmp_path_factory.mktemp("bench-cache"))


# The Hydra tree as the code finds it: package data (bench/conf), here or where installed.
CONF_DIR = str(resources.files("bench.conf"))


def compose(overrides: list[str]):
    """The config `python -m bench` would run with these overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    from bench.config import register_configs

    register_configs()
    with initialize_config_module("bench.conf", version_base="1.3"):
        return hydra_compose("config", overrides=overrides)
