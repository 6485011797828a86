"""gradgen: a source-to-source backprop compiler for numeric Python.

The pipeline runs one way, one module a stage:
load -> trace -> ir -> autodiff -> passes -> emit -> format -> write -> check.
"""

__version__ = "0.1.0"
