"""Which frame of a traceback is the code under test: the one rule behind every "the code under test raised" that
the command line (crosscheck.cli) and the layer API (crosscheck.api) report.

The code under test is any file with an absolute path outside the harness (crosscheck/, reference/, netdesc/) and
outside the installed libraries (the standard library, site-packages, numpy's and torch's folders): the
hand-written side of this project, a user's --module, a user's layer. A compiled library's frames carry a relative
name (numpy/random/_common.pyx) and are never the code under test.
"""

import os
import pathlib
import sys
import sysconfig
import traceback

_HARNESS = tuple(str(pathlib.Path(__file__).resolve().parents[1] / name) + os.sep
                 for name in ("crosscheck", "reference", "netdesc"))
_LIBRARIES = tuple({sysconfig.get_paths()[key] for key in ("stdlib", "purelib", "platlib")})


def _libraries():
    """The installed libraries' folders, numpy's and torch's included where they are loaded from elsewhere."""
    loaded = (sys.modules.get(name) for name in ("numpy", "torch"))
    return _LIBRARIES + tuple(os.path.dirname(os.path.dirname(m.__file__)) + os.sep for m in loaded if m)


def under_test(filename):
    return os.path.isabs(filename) and not filename.startswith(_HARNESS + _libraries())


def last_under_test(error):
    """The last frame of the code under test in the error's traceback, or None where every frame is the harness's
    or a library's."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if under_test(f.filename)]
    return frames[-1] if frames else None


def what(error):
    """'ValueError: its message' on one line ('KeyError' for one without a message)."""
    return f"{type(error).__name__}: {' '.join(str(error).splitlines())}".rstrip(": ")
