"""The storage engine: segments, compression, encryption of records, the catalog and its
full-text index, and the store that ties them together (compaction, merging, verification)."""
