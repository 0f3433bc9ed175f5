"""Bindings of langchain-adaptive to concrete engines."""
