"""Defaults for every setting; each can be changed in fswl.toml."""

from __future__ import annotations

#: Days an entry may go unused before `fswl expire` removes it.
EXPIRE_DAYS = 180
#: Days a tombstone is kept; longer than EXPIRE_DAYS so it outlives any copy.
TOMBSTONE_DAYS = 400
#: A DNS or policy hit refreshes an entry's mtime at most this often.
SEEN_REFRESH_SECONDS = 24 * 3600
#: How often recorded hits are written to disk.
SEEN_FLUSH_SECONDS = 30.0
#: Without inotify, every directory's mtime is checked once per this many seconds ([store] sweep_seconds).
SWEEP_SECONDS = 60.0

DNS_LISTEN = "127.0.0.1:5353"
POLICY_LISTEN = "127.0.0.1:10040"
SMTP_LISTEN = "127.0.0.1:2525"
WEB_LISTEN = "127.0.0.1:8025"
WEB_BASE_URL = "http://127.0.0.1:8025"
ZONE = "wl.example.org"

#: Where an installed fswl keeps its home when neither --home nor FSWL_HOME is given.
SYSTEM_HOME = "/var/spool/fswl"

#: Seconds between rounds of `fswl sync --daemon`, and the longest wait after failures.
SYNC_INTERVAL_SECONDS = 60
SYNC_MAX_BACKOFF_SECONDS = 3600
#: SSH keepalive and connect timeout of sync.
SYNC_KEEPALIVE_SECONDS = 30
SYNC_TIMEOUT_SECONDS = 30
#: The longest one round with one peer may take, at either end, however the peer trickles.
SYNC_DEADLINE_SECONDS = 900
#: Days between access lists (the entries a node saw in use, sent to its peers).
ACCESS_LIST_DAYS = 7
