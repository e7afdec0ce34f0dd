from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> str:
    """One cache for the session: the ONNX export of a model is made once, as in real use, and
    so is the host calibration every run stores in its rows, on a short budget (a run's default
    is 30 s, spent once per host) that the tests' runs then find cached."""
    from bench.metrics.calibration import host_calibration

    path = str(tmp_path_factory.mktemp("bench-cache"))
    host_calibration(path, budget_s=2.0)
    return path


CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


def compose(overrides: list[str]):
    """The config `python -m bench` would run with these overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from bench.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return hydra_compose("config", overrides=overrides)
