"""The ``emomusic`` command line, one module per command group (entry point: :func:`emomusic.cli.main.main`)."""
