"""System adapters for the FANNS suite: one small interface (`base.System`), one module each."""
