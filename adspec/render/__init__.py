"""Offline renderers: storyboard frames, camera moves and music for the animatic backend."""
