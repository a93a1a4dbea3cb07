"""The application: the one place where modules meet, behind the ABCI 2.0 method set."""
