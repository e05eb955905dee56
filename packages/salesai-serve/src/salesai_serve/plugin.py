"""Registers nothing yet: the HTTP server and the `salesai serve` command arrive with a later issue.

This is the module the `salesai` entry point of salesai-serve names. Until the components
exist it implements no hook, so `salesai plugins` lists the distribution, its version
and this line, with nothing registered: no stub pretends to work.
"""
