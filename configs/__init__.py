"""The suites: installed as the package gnnbench.configs (pyproject.toml), so `gnnbench run --suite NAME`
finds them from a wheel or any other install, not only from a source checkout (gnnbench/config.py).
This file makes it a regular package: setuptools' editable finder maps only regular packages to a
folder elsewhere, as it does adapters/ -> gnnbench.adapters."""
