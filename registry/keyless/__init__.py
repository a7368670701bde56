"""Offline verification of Sigstore keyless (Fulcio certificate) signatures.

Two layouts, as falcosecurity publishes both for every artifact:
- cosign's legacy `sha256-<hex>.sig` tag (`legacy.py`, our own code on `cryptography`: the SET
  stands in for an inclusion proof there, which sigstore-python cannot verify);
- cosign v3's OCI-referrer bundle (`bundle.py`, through sigstore-python's verifier).

Trust comes only from a pinned trusted root (`trust_root.py`): the production root embedded in
the sigstore package, or one the user installed with `falconet trust update --from FILE`.
Nothing here touches the network.
"""
