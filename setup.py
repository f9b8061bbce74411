"""Build of the one C extension, the MinHash kernels of `dedup` (preprocessing/dedup/_cminhash.c);
everything else is in setup.cfg. The extension is optional: without a C compiler the install
still succeeds, and `dedup` then says (a RuntimeWarning) that it uses the numpy reference."""

import hashlib
from pathlib import Path

import sys

from setuptools import Extension, setup

SOURCE = "preprocessing/dedup/_cminhash.c"
# The source's digest, compiled in: the loader compares it with the source beside it and warns
# when an editable install's extension is older than its source (rebuild: pip install -e .).
digest = hashlib.sha256((Path(__file__).parent / SOURCE).read_bytes()).hexdigest()

setup(ext_modules=[Extension("preprocessing.dedup._cminhash", [SOURCE], optional=True,
                             define_macros=[("CMINHASH_SOURCE_SHA256", f'"{digest}"')],
                             extra_compile_args=[] if sys.platform == "win32" else ["-O3"])])
