"""One writer per output: a lock file beside the output, naming the process that holds it.

    from midg.datasets.locking import OutputLock
    with OutputLock("data/synth", what="dataset"):     # OutputBusy at once if another process writes it
        ...                                            # write data/synth (aside, then moved into place)

`OUT` is guarded by `.OUT.lock` in OUT's parent folder (beside, not inside: a dataset
folder is swapped whole by its writer, and a run folder may be wiped by a fresh run). The
file is JSON: pid, host, boot id, process start time, start date, command and target.

- Taking it: `os.open(O_CREAT | O_EXCL)`, so of two processes exactly one creates it; the
  other reads the holder and is refused with an OutputBusy (a MidgError) naming it.
- A stale lock (its process is gone: no such pid on this host, a zombie, a pid reused by a
  newer process, or a reboot since) is taken over: under a short-lived `.OUT.lock.takeover`
  guard (also O_EXCL), the holder bytes are read again and, still the dead holder's, the
  lock is replaced by rename (`os.replace`) with ours. The lock file never disappears in
  between, so a newcomer's O_EXCL cannot slip in, and of several racing takers one wins.
- A lock from another host cannot be checked (a shared folder): refused, with the file to
  delete when the user knows that process is gone.
- Within one process, a lock whose owner object is gone (garbage collected, never
  released) counts as stale; one still held by a live owner refuses a second writer.
- Releasing removes the file only while it still holds our own bytes.

`recover_leftovers(target)` tidies what an interrupted atomic write (datasets/atomic.py)
left beside `target`; call it only while holding target's lock.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import sys
import time
import weakref
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import DatasetError, MidgError

LOCK_SUFFIX = ".lock"
GUARD_SUFFIX = ".takeover"
# A lock file with no readable holder is a writer between its O_EXCL create and its one
# write (microseconds), or one that died right there: the age tells them apart.
INCOMPLETE_GRACE_S = 10.0
# A takeover guard lives for one read and one rename; older than this, its taker died.
GUARD_STALE_S = 30.0
TAKEOVER_ATTEMPTS = 200  # x 10 ms: how long to wait for another process's takeover
MAX_LOCK_BYTES = 65536

_HELD: "weakref.WeakValueDictionary[str, OutputLock]" = weakref.WeakValueDictionary()  # this process's live locks


class OutputBusy(MidgError):
    """Another process is writing the same output (the message names it and the lock file)."""


def lock_path(target: str | Path) -> Path:
    """`.NAME.lock` beside `target` (the path as given, made absolute; links not followed)."""
    target = Path(os.path.abspath(target))
    if not target.name:
        raise DatasetError(target, "cannot lock a filesystem root: give a folder below it")
    return target.parent / f".{target.name}{LOCK_SUFFIX}"


# ---------------------------------------------------------------- who holds it


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) of a process, from /proc (Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = stat[stat.rfind(")") + 2:].split()  # the command name may hold spaces and parentheses
    try:
        return rest[0], int(rest[19])
    except (IndexError, ValueError):
        return None


def _pid_alive(pid: int, start_ticks: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    except OSError:
        return False
    stat = _proc_stat(pid)
    if stat is not None:
        state, ticks = stat
        if state in ("Z", "X"):
            return False  # killed, not yet reaped by its parent: it writes nothing any more
        if start_ticks is not None and ticks != start_ticks:
            return False  # the pid was reused by a newer process
    return True


def holder_info() -> dict[str, Any]:
    """What this process writes into a lock file."""
    stat = _proc_stat(os.getpid())
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "boot_id": _boot_id(),
        "pid_start": stat[1] if stat else None,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300] if sys.argv else "",
    }


def _read_lock(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(MAX_LOCK_BYTES)  # ours are ~300 bytes; a huge file is not worth reading whole


def read_holder(path: str | Path) -> dict[str, Any] | None:
    """The holder recorded in a lock file, or None when it is missing or unreadable."""
    try:
        return read_holder_bytes(_read_lock(Path(path)))
    except OSError:
        return None


def _describe(info: dict[str, Any] | None) -> str:
    if not info:
        return "a process that is still creating it"
    cmd = f"; command: {info['command']}" if info.get("command") else ""
    return f"pid {info.get('pid')} on host {info.get('host')}, since {info.get('started')}{cmd}"


# ---------------------------------------------------------------- the lock


class OutputLock:
    """An exclusive claim on one output path (see the module docstring).

    `what` names the output in messages ("dataset", "run folder"). `took_over` is the
    stale holder's record when acquiring replaced a dead process's lock, else None.
    """

    def __init__(self, target: str | Path, what: str = "output"):
        self.target = Path(os.path.abspath(target))
        self.path = lock_path(self.target)
        self.what = what
        self.took_over: dict[str, Any] | None = None
        self._payload: bytes | None = None
        self._finalizer: weakref.finalize | None = None

    @property
    def held(self) -> bool:
        return self._payload is not None

    # -- taking

    def acquire(self) -> "OutputLock":
        if self.held:
            raise RuntimeError(f"{self.path}: this OutputLock is already held")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatasetError(self.path.parent, f"cannot create the folder for the lock file ({exc.strerror or exc})") from None
        payload = (json.dumps({**holder_info(), "target": str(self.target)}) + "\n").encode("utf-8")
        for _ in range(TAKEOVER_ATTEMPTS):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pass
            except OSError as exc:
                raise DatasetError(self.path, f"cannot create the lock file ({exc.strerror or exc}); "
                                              f"the {self.what} {self.target} is not writable here") from None
            else:
                try:
                    os.write(fd, payload)  # one write: a reader sees all of it or an empty file
                except OSError as exc:  # a full disk: leave no empty lock behind
                    os.close(fd)
                    self.path.unlink(missing_ok=True)
                    raise DatasetError(self.path, f"cannot write the lock file ({exc.strerror or exc})") from None
                os.close(fd)
                self._claimed(payload)
                return self
            try:
                seen = _read_lock(self.path)
            except FileNotFoundError:
                continue  # released in between: try to create it again
            except OSError as exc:
                raise DatasetError(self.path, f"cannot read the lock file ({exc.strerror or exc})") from None
            info = read_holder_bytes(seen)
            verdict = self._judge(info)
            if verdict != "dead":
                raise OutputBusy(self._busy_message(info, verdict))
            if self._take_over(seen, payload):
                self.took_over = info or {}
                self._claimed(payload)
                return self
            time.sleep(0.01)  # another process is taking it over, or it changed: look again
        raise OutputBusy(f"{self.target}: could not take the lock {self.path} (other processes keep "
                         "taking it over); try again")

    def _claimed(self, payload: bytes) -> None:
        self._payload = payload
        _HELD[str(self.path)] = self
        # a process that forgets to release (or ends without running `finally`) still frees it
        self._finalizer = weakref.finalize(self, _remove_if_ours, str(self.path), payload)

    def _judge(self, info: dict[str, Any] | None) -> str:
        """'alive', 'dead', 'other-host' or 'incomplete' (being created right now)."""
        if info is None:
            try:
                age = time.time() - self.path.stat().st_mtime
            except FileNotFoundError:
                return "dead"  # gone: the next round creates it
            return "dead" if age > INCOMPLETE_GRACE_S else "incomplete"
        if info.get("host") != socket.gethostname():
            return "other-host"
        boot = _boot_id()
        if boot and info.get("boot_id") and info["boot_id"] != boot:
            return "dead"  # the machine restarted since: every process of then is gone
        pid = info.get("pid")
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            return "dead"
        if pid == os.getpid():
            owner = _HELD.get(str(self.path))
            return "alive" if owner is not None and owner.held else "dead"
        start = info.get("pid_start")
        return "alive" if _pid_alive(pid, start if isinstance(start, int) else None) else "dead"

    def _busy_message(self, info: dict[str, Any] | None, verdict: str) -> str:
        if verdict == "other-host":
            return (f"{self.target}: the {self.what} is locked by {_describe(info)}, which cannot be checked from "
                    f"host {socket.gethostname()}; if that process is gone, delete {self.path}")
        if info and info.get("pid") == os.getpid():
            return f"{self.target}: the {self.what} is already being written by this process ({_describe(info)})"
        return (f"{self.target}: the {self.what} is being written by another midg process ({_describe(info)}); "
                f"wait for it to finish, or stop it (the lock is {self.path})")

    def _take_over(self, stale: bytes, payload: bytes) -> bool:
        """Replace a dead holder's lock with ours; False when another process got there first."""
        guard = self.path.with_name(self.path.name + GUARD_SUFFIX)
        try:
            gfd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                if time.time() - guard.stat().st_mtime > GUARD_STALE_S:
                    guard.unlink()  # its taker died between two syscalls
            except FileNotFoundError:
                pass
            return False
        except OSError as exc:
            raise DatasetError(guard, f"cannot create the takeover guard ({exc.strerror or exc})") from None
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        try:
            os.write(gfd, payload)
            os.close(gfd)
            try:
                if _read_lock(self.path) != stale:
                    return False  # taken over, or released and re-created, since we judged it
            except FileNotFoundError:
                return False
            tmp.write_bytes(payload)
            os.replace(tmp, self.path)
            return True
        finally:
            tmp.unlink(missing_ok=True)
            guard.unlink(missing_ok=True)

    # -- giving back

    def release(self) -> None:
        if self._payload is None:
            return
        if self._finalizer is not None:
            self._finalizer.detach()
        _remove_if_ours(str(self.path), self._payload)
        self._payload = None
        if _HELD.get(str(self.path)) is self:
            del _HELD[str(self.path)]

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def read_holder_bytes(data: bytes) -> dict[str, Any] | None:
    try:
        info = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):  # not ours, or being written: judged by its age
        return None
    return info if isinstance(info, dict) and "pid" in info and "host" in info else None


def _remove_if_ours(path: str, payload: bytes) -> None:
    try:
        if _read_lock(Path(path)) == payload:
            os.unlink(path)
    except OSError:
        pass  # gone already, or a folder we can no longer write: the next writer judges it stale


# ---------------------------------------------------------------- leftovers of interrupted writes


def recover_leftovers(target: str | Path) -> list[str]:
    """Tidy what an interrupted atomic write of `target` left beside it; hold target's lock.

    datasets/atomic.py writes `.NAME.tmp-*` and swaps via `.NAME.old-*/x`. A process killed
    between the two renames of a swap leaves NAME missing and its previous version in
    `.old-*/x`: that is moved back. Everything else of the kind is removed. Returns a line
    per action (for a log).
    """
    target = Path(os.path.abspath(target))
    parent, name = target.parent, target.name
    done: list[str] = []
    if not parent.is_dir():
        return done
    entries = sorted(parent.iterdir())  # not glob: a name may hold [ ] * ?
    olds = [p for p in entries if p.name.startswith(f".{name}.old-")]
    tmps = [p for p in entries if p.name.startswith(f".{name}.tmp-")]
    if not target.exists() and not target.is_symlink():
        for old in olds:
            if (old / "x").exists() or (old / "x").is_symlink():
                os.replace(old / "x", target)
                done.append(f"restored {target} from {old.name} (a swap was interrupted)")
                break
    for leftover in olds + tmps:
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        done.append(f"removed {leftover.name} (left by an interrupted write)")
    return done


def recover_folder(folder: str | Path) -> list[str]:
    """recover_leftovers for every entry of a folder one process owns (a checkpoint folder)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    names = set()
    for p in folder.iterdir():
        for marker in (".tmp-", ".old-"):
            if p.name.startswith(".") and marker in p.name:
                names.add(p.name[1:p.name.index(marker)])
    done: list[str] = []
    for name in sorted(names):
        done += recover_leftovers(folder / name)
    return done
