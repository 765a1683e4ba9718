"""Policies (CLIP-RT+), planners (symbolic and LLM) and the KV-freeze cache."""
