"""Pure parsers that turn what a remote image server serves into a RemoteCatalog.

No I/O happens here: :mod:`reconciler.adapters.remotes` fetches the documents and
hands them to :func:`reconciler.remotes.simplestreams.build_catalog` or
:func:`reconciler.remotes.incus.build_catalog`.  Both raise
:class:`reconciler.errors.RemoteError` on garbage, never anything else.
"""
