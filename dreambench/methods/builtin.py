"""Imports the built-in methods so that they register themselves."""
