"""Built-in plugins of lingspace-harness (installed as ``lingspace_harness_plugins``).

Each module is an entry point in the ``lingspace_harness`` group, registered exactly like a
third-party plugin, and uses only the public ``lingspace_harness`` API.
"""
