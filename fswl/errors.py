"""One exception tree for fswl; each class's docstring is its message."""

from __future__ import annotations


class FswlError(Exception):
    """{}"""

    #: The exit status the CLI returns for this error.
    exit_code = 2

    def __str__(self) -> str:
        return (type(self).__doc__ or "{}").format(*self.args)


class BadInput(FswlError):
    """{}"""


class BadSender(BadInput):
    """Not a sender: {!r} ({}). Use local@domain, *@domain or *."""


class BadRelay(BadInput):
    """Not a relay IP or CIDR: {!r} ({})."""


class BadName(BadInput):
    """Not an entry file name: {!r} ({})."""


class BadConfig(BadInput):
    """Bad configuration in {}: {}."""


class BadGroup(BadInput):
    """Not a group name: {!r}. Use letters, digits, '.', '-' and '_'."""


class UnsafePath(FswlError):
    """Refusing {}: it leads outside db/ ({})."""

    @property
    def kind(self) -> str:
        """What is wrong with the way: ``loop``, ``dangling``, ``escapes`` (see fswl.store.tree.LinkCheck)."""
        return str(self.args[2]) if len(self.args) > 2 else "escapes"


class Refused(FswlError):
    """{}"""

    #: Done, except what was refused: a rerun after fixing those finishes the job.
    exit_code = 1


class Conflict(FswlError):
    """{}"""


class NotListed(FswlError):
    """{} is not listed for {}."""

    exit_code = 1


class ServiceError(FswlError):
    """{}"""

    exit_code = 1


class BadCode(FswlError):
    """{}"""


# A code that worked once and no longer does (expired, already used), as opposed to one that never worked:
# the web page answers 410 for these and 404 for every other BadCode, whatever the message says.
class CodeGone(BadCode):
    """{}"""


class VerifyRefused(FswlError):
    """{}"""


class BadSource(BadInput):
    """Not a source name: {!r}. Use letters, digits, '.', '-' and '_' (at most 64)."""


class BadRecord(BadInput):
    """Bad sync record: {}."""


class SyncError(FswlError):
    """{}"""

    exit_code = 1


class HostKeyError(SyncError):
    """{}"""


class NotADirectoryInTree(UnsafePath):
    """Refusing {}: {} is not a directory; move that file out of the way (`fswl fsck` lists such files)."""


class EntryNameTaken(UnsafePath):
    """Refusing {}: the entry's name is taken by something that is not a plain file; remove it and write again."""


class ListenerFailed(FswlError):
    """{} {} is written, but {} failed ({}): run `fswl sync --full` with each peer so that mirrors get it."""

    exit_code = 1
