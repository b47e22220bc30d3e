"""recsdk's own algorithm-family plugins, one package each.

Each is registered under the ``recsdk`` entry-point group in ``setup.cfg``, exactly
as a third party's plugin would be, and enabled by name in configuration.
"""
