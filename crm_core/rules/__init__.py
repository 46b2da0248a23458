"""Pure rules: plain functions and tables with no I/O."""
