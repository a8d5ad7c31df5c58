"""adspec: a declarative spec compiler and make-style build system for AI video ads."""

__version__ = "0.1.0"
