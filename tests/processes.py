"""Finding the processes an engine started, for tests that check none is left behind."""

from __future__ import annotations

import psutil


def engine_processes(parent: psutil.Process) -> list[psutil.Process]:
    """The live descendants of `parent` that belong to the engine.

    Python's multiprocessing resource tracker is a helper of the parent interpreter, not of
    vLLM: it lives until the interpreter exits. A zombie (a process that exited and awaits
    reaping, e.g. from an earlier test) or one gone meanwhile holds nothing: it is skipped.
    """
    found = []
    for child in parent.children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            if "resource_tracker" in " ".join(child.cmdline()):
                continue
        except (psutil.ZombieProcess, psutil.NoSuchProcess):
            continue
        found.append(child)
    return found
