"""The Hydra config tree (YAML presets only), shipped inside the package so that an installed
`bench` finds it from any folder: Hydra reads it as `pkg://bench.conf`, the rest of the code
through `importlib.resources.files("bench") / "conf"`. This file only makes it a package."""
