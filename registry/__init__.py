"""OCI distribution: references, client + auth, falcoctl artifacts, indexes, layouts, signatures."""
