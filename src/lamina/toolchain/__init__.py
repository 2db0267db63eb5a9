"""The build story: ``lamina new``, ``build``, ``inspect`` and ``deploy``."""
