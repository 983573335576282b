"""A quiet console: TensorFlow's start-up banners and log chatter hidden unless asked for.

Importing TensorFlow writes oneDNN and CUDA-stub banners straight to the process's stderr, before its
logging is initialised (``TF_CPP_MIN_LOG_LEVEL`` does not reach them), and on a machine without a GPU its first
op logs "failed call to cuInit: CUDA error", which a newcomer reads as a failure. Its Python loggers add
retracing warnings and "Assets written to" lines. None of it is about the user's work, so by default:

- the import of ``tensorflow`` runs with file descriptor 2 pointed at /dev/null (Python errors still surface:
  they are raised as exceptions, printed after stderr is back);
- ``TF_CPP_MIN_LOG_LEVEL`` defaults to 3 (C++ errors after the import; an explicit value is kept);
- TensorFlow's and absl's Python loggers show errors only.

``PYNET_VERBOSE=1`` in the environment shows all of it. ``pynet_tf`` installs this on import, before any of
the project's modules imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import sys
from collections.abc import Iterator
from types import ModuleType

VERBOSE_ENV = "PYNET_VERBOSE"
"""Set to 1 (or any value but 0 / empty) to see TensorFlow's console output unfiltered."""

QUIET_LOGGERS = ("tensorflow", "absl", "h5py")
"""Python loggers of the libraries that talk at INFO/WARNING about their own internals."""


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


@contextlib.contextmanager
def stderr_silenced() -> Iterator[None]:
    """File descriptor 2 to /dev/null for the block: what C/C++ code writes there is dropped."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def native_quiet() -> Iterator[None]:
    """``stderr_silenced`` unless ``PYNET_VERBOSE`` is set: around calls into the TFLite converter and LiteRT,
    whose C++ writes progress lines to stderr that no log level reaches ("fully_quantize: 0, inference_type:
    6, ..." per quantization, "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."). Their failures
    are raised as Python exceptions, which still show."""
    with contextlib.nullcontext() if verbose() else stderr_silenced():
        yield


class _SilencedLoader(importlib.abc.Loader):
    """Wraps a package's loader: executes the package with stderr silenced, then quiets its loggers."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with stderr_silenced():
            self.loader.exec_module(module)
        quiet_loggers()

    def __getattr__(self, name: str):  # get_resource_reader, is_package, ...: the wrapped loader's
        return getattr(self.loader, name)


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` once, through the other finders, and hands back a spec with a silenced loader."""

    def find_spec(self, name: str, path=None, target=None) -> importlib.machinery.ModuleSpec | None:
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once; the finders after us find the real spec
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _SilencedLoader(spec.loader)
        return spec


def quiet_loggers() -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def install() -> None:
    """Quiet TensorFlow for this process unless ``PYNET_VERBOSE`` is set (see the module docstring)."""
    if verbose():
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        quiet_loggers()
    elif not any(isinstance(finder, _QuietImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport())
