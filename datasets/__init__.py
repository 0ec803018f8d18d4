"""The canonical dataset layer: layout reader/writer, importers, demo boards, splits.

This package imports no generator, detector or CLI code; every stage reads and writes
datasets through it.
"""
