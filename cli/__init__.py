"""The audiostyle command line (installed as the import package ``audiostyle_cli``)."""
