"""Plumbing every layer may use: errors a user can cause (`errors`), safe file
writes (`files`), what a command prints (`console`), and the one way a package
exposes its public names (`exports`). No TensorFlow here."""
