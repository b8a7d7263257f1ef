"""pytest's own per-test work: the generated tests are empty and no plugin is loaded."""
