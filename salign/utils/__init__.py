"""Small shared helpers: atomic file output and user-facing input errors."""
