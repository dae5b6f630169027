"""Exports of db/ for existing DNS software: rbldnsd data and RFC 1035 zone files.

:mod:`fswl.dns.export_names` walks the tree once and yields every DNS name
fswl answers, with its A value and TXT (the zone transfer serves the same
records); the format modules here only spell them.
"""
