"""CRLs in the My Number zone: the inbox the relay delivers to, and the watcher every long-running
process runs so that a CRL installed by one process (or dropped by an operator) reaches all of them.

The intake never fetches a CRL itself (it opens no connection out): the relay fetches them from the
distribution points and hands them over (``PUT /api/v1/crls/{name}``, :mod:`handover.crls`).
"""
