"""passkt: reproducible Pass@(k,T) analysis of RL for tool-using LLM agents (arXiv 2604.14877)."""

__version__ = "0.1.0"
