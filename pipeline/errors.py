"""Turn known failures into one clear line for the command line, instead of a traceback."""

from __future__ import annotations

import errno


def user_facing(exc: BaseException) -> str | None:
    from pipeline.datasets import DatasetError
    from pipeline.lock import RunLocked
    from storage.parts import SchemaMismatch

    if isinstance(exc, (DatasetError, RunLocked, SchemaMismatch)):
        return str(exc)
    if isinstance(exc, PermissionError):
        return f"permission denied writing {exc.filename or 'the output'}: choose a writable --output"
    if isinstance(exc, OSError) and exc.errno == errno.EROFS:
        # Not a PermissionError subclass, but the same cure.
        return (f"permission denied writing {exc.filename or 'the output'} (read-only file system): "
                "choose a writable --output")
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return ("no space left on the output device; free space and re-run the same command: "
                "committed parts are kept and the run resumes")
    if isinstance(exc, FileNotFoundError):
        return str(exc)
    # Errors defined by stages that explain themselves (e.g. a model that cannot be loaded).
    if getattr(exc, "user_facing", False):
        return str(exc)
    return None
