"""Verification: challenge mail for unlisted senders, confirmation by link or reply, caps against backscatter."""
