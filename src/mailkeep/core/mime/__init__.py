"""MIME and text: parsing messages, decoding charsets, turning HTML into searchable text."""
