"""What to install and when: configuration, indexes, solver, lock file, install, follow."""
