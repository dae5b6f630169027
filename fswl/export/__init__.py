"""Exports of db/ for existing DNS software: rbldnsd data and RFC 1035 zone files.

:mod:`fswl.export.names` walks the tree once and yields every DNS name fswl
answers, with its A value and TXT; the format modules only spell them.
"""
