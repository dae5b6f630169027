"""Mirrors: batches of writes exchanged with peers over SSH, digests, access lists."""
