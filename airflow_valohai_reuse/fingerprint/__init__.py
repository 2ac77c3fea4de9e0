"""Fingerprints: canonical encoding, components, typed diffs, code scope and checksums (pure, or hashing)."""
