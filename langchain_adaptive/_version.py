"""The library's version, in a leaf module so any module can read it without the package root."""

__version__ = "0.1.0"
