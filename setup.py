from setuptools import setup

# Metadata lives in pyproject.toml; this file only hooks the cffi extension
# (pykring._kring, API mode) into the build.
setup(
    cffi_modules=["pykring/_build.py:ffibuilder"],
)
