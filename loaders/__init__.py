"""What training code imports. Light on import: torch loads only with what needs it.

``loaders.decode`` (the shared decode path) needs no torch; ``loaders.mel`` does.
This package never imports ``prep``, click or joblib.
"""
