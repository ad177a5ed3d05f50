"""Defaults the core shares with the settings, in a module that imports nothing: settings.py reads them at init,
before anything imports numpy."""

# The modules imported before the model loads, so that its custom layers are registered: the reference model's.
DEFAULT_CUSTOM_OBJECT_MODULES = ("handler.custom_objects",)
