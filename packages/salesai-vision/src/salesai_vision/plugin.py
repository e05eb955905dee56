"""Registers nothing yet: the ViT patch encoder and image preprocessing arrive with a later issue.

This is the module the `salesai` entry point of salesai-vision names. Until the components
exist it implements no hook, so `salesai plugins` lists the distribution, its version
and this line, with nothing registered: no stub pretends to work.
"""
