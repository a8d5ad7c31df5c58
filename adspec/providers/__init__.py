"""Providers: who makes each artifact. Offline (free, local) and live (OpenAI, Replicate)
providers share the interfaces in `base`, the request cache and the recipes."""
