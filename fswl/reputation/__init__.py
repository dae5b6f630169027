"""Reputation throttling: unlisted relays pass a few messages an hour, more as their record grows."""
