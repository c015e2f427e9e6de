"""Trainer of lsa's memory indexer (a lightning-style dual encoder), backbone-free.

It reads the dump lsa-indexer-dump wrote (features of both sides and lookahead labels, NumPy
arrays) and never loads the language model. See docs/indexer.md.
"""
