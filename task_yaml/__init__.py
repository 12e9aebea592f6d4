"""lm-eval task YAMLs for lingspace-harness (installed as ``lingspace_harness_yaml``).

``blimp/`` follows lm-eval's conventions: ``_template_yaml``, one generated leaf per
paradigm, the group file ``_lingspace_blimp.yaml`` and the generator ``generate.py``.
"""
