"""Built-in check and action plugins, installed with the engine.

Each module registers its plugins with ``runbook.plugins.check`` / ``action``. A team
adds its own plugins as ``checks/*.py`` files in its project root.
"""
