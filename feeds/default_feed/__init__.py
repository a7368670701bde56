"""The embedded default feed: falconet's own rules file, packed as a falcoctl rulesfile artifact
into an OCI image layout shipped inside the package (offline, reproducible, signed)."""
