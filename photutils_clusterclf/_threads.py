"""The number of CPU threads torch computes with: the package default and how to set it.

torch starts one OpenMP thread per physical core. On a machine where other
processes hold some of the cores, those threads wait for each other at
every parallel region and a forward pass becomes several times slower than
on one thread (``benchmarks/bench_threads.py``; see :ref:`performance`).
The package default therefore leaves out the cores that are busy when it
is chosen: the usable CPUs minus the processes of others runnable at that
moment (the run queue of ``/proc/loadavg``), at least 1, and never more
than torch's own default. ``OMP_NUM_THREADS`` set
in the environment is respected.

torch is imported only when a thread count is applied with
`set_num_threads`; `apply_num_threads` (what the ``clusterclf`` commands
call before any work) does not import it.
"""

import contextlib
import os
import sys
import time

__all__ = [
    "apply_num_threads",
    "default_num_threads",
    "num_threads",
    "parse_num_threads",
    "set_num_threads",
]


def _usable_cpus():
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _busy_cpus():
    """Processes other than this one runnable now: the median of 10 samples of the
    run queue (``/proc/loadavg``) 10 ms apart; 0 where the OS does not report it.

    The run queue now, not the 1-minute load average: that one still counts
    work that has just finished (such as the previous command of a loop).
    """
    running = []
    for i in range(10):
        try:
            with open("/proc/loadavg") as f:
                running.append(int(f.read().split()[3].split("/")[0]) - 1)
        except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
            break
        if i < 9:
            time.sleep(0.01)
    return sorted(running)[len(running) // 2] if running else 0


def default_num_threads(*, busy=None, cpus=None, torch_default=None):
    """The package's default number of torch threads.

    ``OMP_NUM_THREADS`` if set to a positive integer; otherwise the usable
    CPUs minus those other processes keep busy (processes runnable now,
    from the run queue), at least 1 and at most
    torch's default (one thread per physical core).

    Parameters
    ----------
    busy, cpus, torch_default : int, optional
        The busy CPUs, usable CPUs and torch's default thread count to
        decide with (default: those of this machine and process).

    Returns
    -------
    int
    """
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    busy = _busy_cpus() if busy is None else busy
    cpus = _usable_cpus() if cpus is None else cpus
    if torch_default is None:
        import torch

        torch_default = _torch_default(torch)
    return max(1, min(cpus - busy, torch_default))


def _physical_cores():
    """Physical cores among the usable CPUs (torch's default thread count), from sysfs."""
    cores = set()
    try:
        for cpu in os.sched_getaffinity(0):
            topology = f"/sys/devices/system/cpu/cpu{cpu}/topology/"
            with open(topology + "physical_package_id") as f1, open(topology + "core_id") as f2:
                cores.add((f1.read().strip(), f2.read().strip()))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return _usable_cpus()
    return len(cores) or _usable_cpus()


def apply_num_threads(n=None):
    """Use ``n`` torch threads from now on, without importing torch.

    If torch is imported already, this is `set_num_threads`; otherwise
    ``OMP_NUM_THREADS`` is set to the number, which torch reads when it is
    imported (and which child processes inherit), so that commands that
    stop at bad input do not pay for importing torch.

    Parameters
    ----------
    n : int or "auto", optional
        See `set_num_threads`.
    """
    n = parse_num_threads(n)
    if "torch" in sys.modules:
        set_num_threads(n)
        return
    if n is None:
        n = default_num_threads(torch_default=_physical_cores())
    os.environ["OMP_NUM_THREADS"] = str(n)


def _torch_default(torch):
    """torch's own default thread count (its value before this module changed it)."""
    global _TORCH_DEFAULT
    if _TORCH_DEFAULT is None:
        _TORCH_DEFAULT = torch.get_num_threads()
    return _TORCH_DEFAULT


_TORCH_DEFAULT = None


def parse_num_threads(value):
    """Validate a thread count: a positive integer, or ``"auto"`` / None for the default.

    Parameters
    ----------
    value : int, str or None
        ``4``, ``"4"``, ``"auto"`` or None.

    Returns
    -------
    int or None
        The count, or None for the package default.

    Raises
    ------
    ValueError
        If ``value`` is not a positive integer or ``"auto"`` (whatever its
        type, so that command-line strings and Python values get one message).
    """
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"the number of threads must be a positive integer or 'auto', not {value!r}"
        )
    return value


def set_num_threads(n=None):
    """Set the number of CPU threads torch computes with; return the previous number.

    Parameters
    ----------
    n : int or "auto", optional
        Threads to use. None or ``"auto"``: `default_num_threads` (the
        usable CPUs that are not busy), which is what ``clusterclf``
        commands use unless given ``--num-threads``.

    Returns
    -------
    int
        The number of threads before the call.

    Raises
    ------
    ValueError
        If ``n`` is not a positive integer, None or ``"auto"``.
    """
    n = parse_num_threads(n)
    import torch

    _torch_default(torch)  # remember torch's own default before changing it
    previous = torch.get_num_threads()
    torch.set_num_threads(default_num_threads() if n is None else n)
    return previous


@contextlib.contextmanager
def num_threads(n=None):
    """Context manager: torch uses ``n`` threads inside the block, the previous number after.

    Parameters
    ----------
    n : int or "auto", optional
        See `set_num_threads`.

    Examples
    --------
    >>> import torch
    >>> from photutils_clusterclf import num_threads
    >>> before = torch.get_num_threads()
    >>> with num_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    previous = set_num_threads(n)
    import torch

    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)
