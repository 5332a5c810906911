"""Who holds a lease: run ids of the form ``<host>-<pid>-<random>``, and whether that run is gone.

A lease normally ends when its run gives it back or when it expires. A local run can do better: when
the owner ran on this host and its process no longer exists (killed, crashed, closed terminal), nobody
can give the lease back, and waiting for its expiry only costs the user minutes. In AWS the rule is not
used: Lambda sandboxes can share host names and pids, so only expiry is safe there.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable

_HOST_CHARS = 30


def this_host() -> str:
    """The host part of run ids made here."""
    return socket.gethostname()[:_HOST_CHARS]


def new_owner() -> str:
    """A run id for leases: host, pid and a random part (unique across overlapping runs)."""
    return f"{this_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def parse_owner(owner: str) -> tuple[str, int] | None:
    """``(host, pid)`` of a run id made by ``new_owner``; None for anything else."""
    parts = owner.rsplit("-", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[0]:
        return None
    return parts[0], int(parts[1])


def pid_alive(pid: int) -> bool:
    """True while a process with ``pid`` exists on this host (signal 0 checks without signalling)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    except OSError:
        return True  # cannot tell: assume alive, the lease then expires as usual
    return True


def owner_process_gone(
    owner: str, *, host: str | None = None, alive: Callable[[int], bool] = pid_alive
) -> bool:
    """True only when ``owner`` ran on this host (``host``) and its process no longer exists.

    Any doubt (another host, an id not made by ``new_owner``, our own process) answers False, so the
    lease is respected until it is released or expires.
    """
    parsed = parse_owner(owner)
    if parsed is None:
        return False
    owner_host, pid = parsed
    if owner_host != (this_host() if host is None else host) or pid == os.getpid():
        return False
    return not alive(pid)
