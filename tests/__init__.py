"""pykring's tests; helpers are imported as a package (from tests import model)."""
