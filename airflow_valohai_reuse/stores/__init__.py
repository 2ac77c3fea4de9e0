"""Artifact stores, chosen by the URI scheme: content-addressed and immutable."""
