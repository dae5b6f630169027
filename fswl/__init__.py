"""fswl: a global whitelist of email senders, kept as a tree of empty files."""

__version__ = "0.1.0"
