"""pytest plugin (entry point `pytest11`): the salesai fixtures, available to plugin authors."""
