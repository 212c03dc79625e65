"""The Windows tests: a package, so that they import their helpers
(winharness) as a module of it rather than through sys.path."""
