"""Email backends: ``mailcore.backends.NAME.EmailBackend``."""
